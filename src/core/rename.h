// Rewording of a failure message for a caller whose argument names differ from the library's
// (shrink/expand over add_lora, the punica names over shrink/expand): whole identifier tokens
// only, so "x" never matches inside "x_offset".  Presentation only: status and kind stay data.
#pragma once
#include <string>
#include <utility>

namespace addlora::detail {

// [first, last): (from, to) pairs.
template <class It>
std::string rename_identifiers(const std::string& s, It first, It last) {
  auto ident = [](char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  std::string r;
  size_t i = 0;
  while (i < s.size()) {
    if (!ident(s[i])) {
      r += s[i++];
      continue;
    }
    size_t j = i;
    while (j < s.size() && ident(s[j])) ++j;
    std::string tok = s.substr(i, j - i);
    for (It p = first; p != last; ++p)
      if (tok == p->first) {
        tok = p->second;
        break;
      }
    r += tok;
    i = j;
  }
  return r;
}

}  // namespace addlora::detail
