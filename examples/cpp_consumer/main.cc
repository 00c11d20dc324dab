// Multi-LoRA on bf16 activations with fp16 weights through the general C++ API: four tokens,
// two adapters, one token without an adapter.  Checks the result against a plain double loop
// and exits non-zero on a mismatch.
#include <addlora/addlora.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {
uint16_t to_bf16(float f) { uint32_t u; std::memcpy(&u, &f, 4); return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
float from_bf16(uint16_t b) { uint32_t u = static_cast<uint32_t>(b) << 16; float f; std::memcpy(&f, &u, 4); return f; }
// Small integers and halves are exact in fp16: 0x3c00 is 1.0, 0x3800 is 0.5, 0xb800 is -0.5.
float from_f16_simple(uint16_t h) { return h == 0x3c00 ? 1.0f : h == 0x3800 ? 0.5f : h == 0xb800 ? -0.5f : 0.0f; }
}  // namespace

int main() {
  const int64_t B = 4, H1 = 24, H2 = 20, H3 = 30, R = 3, W = 2, L = 1;
  std::vector<uint16_t> x(B * H1), y(B * H3), out(B * H3), a(W * L * R * H1), b(W * L * H2 * R);
  for (int64_t i = 0; i < B * H1; ++i) x[i] = to_bf16(static_cast<float>(i % 7) - 3.0f);
  for (int64_t i = 0; i < B * H3; ++i) y[i] = to_bf16(static_cast<float>(i % 5));
  for (int64_t i = 0; i < W * L * R * H1; ++i) a[i] = (i % 3 == 0) ? 0x3800 : (i % 3 == 1 ? 0xb800 : 0x3c00);
  for (int64_t i = 0; i < W * L * H2 * R; ++i) b[i] = (i % 2) ? 0x3c00 : 0x3800;
  std::vector<int32_t> idx{1, -1, 0, 1};

  addlora::Arguments args;
  args.x = addlora::TensorView::contiguous(x.data(), addlora::DType::bf16, {B, H1});
  args.y = addlora::TensorView::contiguous(y.data(), addlora::DType::bf16, {B, H3});
  args.out = addlora::TensorView::contiguous(out.data(), addlora::DType::bf16, {B, H3});
  args.weight_a = addlora::TensorView::contiguous(a.data(), addlora::DType::f16, {W, L, R, H1});
  args.weight_b = addlora::TensorView::contiguous(b.data(), addlora::DType::f16, {W, L, H2, R});
  args.indices = addlora::TensorView::contiguous(idx.data(), addlora::DType::i32, {B});
  args.scale = 0.25;
  args.y_offset = 5;
  std::string msg;
  if (addlora::add_lora(args, addlora::Rules::general, &msg) != addlora::Status::ok) {
    std::printf("error: %s\n", msg.c_str());
    return 1;
  }
  int bad = 0;
  for (int64_t r = 0; r < B; ++r)
    for (int64_t c = 0; c < H3; ++c) {
      double want = from_bf16(y[r * H3 + c]);
      const int64_t n = c - 5;
      if (idx[r] >= 0 && idx[r] < W && n >= 0 && n < H2) {
        double d = 0;
        for (int64_t k = 0; k < R; ++k) {
          double z = 0;
          for (int64_t h = 0; h < H1; ++h)
            z += from_bf16(x[r * H1 + h]) * from_f16_simple(a[(idx[r] * R + k) * H1 + h]);
          d += z * from_f16_simple(b[(idx[r] * H2 + n) * R + k]);
        }
        want += 0.25 * d;
      }
      const double got = from_bf16(out[r * H3 + c]);
      if (std::fabs(got - want) > std::fabs(want) * (1.0 / 128) + 1e-30) ++bad;
    }
  std::printf("addlora %s on %s with %d threads: %s (%d mismatches)\n", addlora::version(), addlora::simd_target(),
              addlora::num_threads(), bad ? "FAILED" : "ok", bad);
  return bad ? 1 : 0;
}
