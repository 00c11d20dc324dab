// Stand-alone driver for the fuzz harnesses when libFuzzer is not used (gcc builds, CTest):
// replays every file of the given corpus folders, then N pseudo-random inputs
// (`--random=N`, `--seed=S`).  The harnesses abort on any finding, so a clean exit is a pass.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  long random_runs = 0;
  uint64_t seed = 1;
  long executed = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--random=", 0) == 0) { random_runs = std::stol(a.substr(9)); continue; }
    if (a.rfind("--seed=", 0) == 0) { seed = std::stoull(a.substr(7)); continue; }
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(a)) {
      for (const auto& e : std::filesystem::directory_iterator(a)) files.push_back(e.path());
    } else {
      files.emplace_back(a);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++executed;
    }
  }
  std::mt19937_64 gen(seed);
  std::vector<uint8_t> buf;
  for (long r = 0; r < random_runs; ++r) {
    buf.resize(gen() % 384);
    for (auto& b : buf) b = static_cast<uint8_t>(gen());
    LLVMFuzzerTestOneInput(buf.data(), buf.size());
    ++executed;
  }
  std::printf("fuzz replay: %ld inputs executed, no finding\n", executed);
  return 0;
}
