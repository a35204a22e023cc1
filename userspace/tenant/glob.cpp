#include "tenant/glob.h"

#include <algorithm>
#include <bit>
#include <deque>
#include <limits>
#include <string>

namespace helios::tenant {
namespace {

GlobElement all_bytes() {
  GlobElement e;
  e.set.fill(~uint64_t{0});
  return e;
}

void add_byte(GlobElement& e, unsigned char c) {
  e.set[c >> 6] |= uint64_t{1} << (c & 63);
}

GlobElement literal(unsigned char c) {
  GlobElement e;
  add_byte(e, c);
  return e;
}

Error bad(std::string what, size_t offset) {
  return Error::invalid(std::move(what) + " at offset " + std::to_string(offset));
}

// Parses the class starting at pattern[start] == '['; on success *end is one past its ']'.
Result<GlobElement> parse_class(std::string_view p, size_t start, size_t* end) {
  GlobElement e;
  size_t j = start + 1;
  bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
  if (negate) ++j;
  bool first = true;
  for (;;) {
    if (j >= p.size()) return bad("unterminated '['", start);
    char c = p[j];
    if (c == ']' && !first) break;
    first = false;
    unsigned char lo;
    if (c == '\\') {
      if (j + 1 >= p.size()) return bad("trailing '\\' in class", j);
      lo = static_cast<unsigned char>(p[j + 1]);
      j += 2;
    } else {
      lo = static_cast<unsigned char>(c);
      ++j;
    }
    unsigned char hi = lo;
    if (j + 1 < p.size() && p[j] == '-' && p[j + 1] != ']') {
      size_t range_at = j;
      ++j;
      if (p[j] == '\\') {
        if (j + 1 >= p.size()) return bad("trailing '\\' in class", j);
        hi = static_cast<unsigned char>(p[j + 1]);
        j += 2;
      } else {
        hi = static_cast<unsigned char>(p[j]);
        ++j;
      }
      if (hi < lo) return bad("reversed range in class", range_at - 1);
    }
    for (unsigned b = lo; b <= hi; ++b) add_byte(e, static_cast<unsigned char>(b));
  }
  if (negate)
    for (auto& w : e.set) w = ~w;
  if (e.member_count() == 0) return bad("class matches no byte", start);
  *end = j + 1;
  return e;
}

Result<std::vector<GlobElement>> parse(std::string_view p) {
  if (p.empty()) return Error::invalid("empty pattern");
  std::vector<GlobElement> out;
  size_t i = 0;
  while (i < p.size()) {
    char c = p[i];
    if (c == '*') {
      if (out.empty() || !out.back().star) {
        GlobElement star;
        star.star = true;
        out.push_back(star);
      }
      ++i;
    } else if (c == '?') {
      out.push_back(all_bytes());
      ++i;
    } else if (c == '\\') {
      if (i + 1 >= p.size()) return bad("trailing '\\'", i);
      out.push_back(literal(static_cast<unsigned char>(p[i + 1])));
      i += 2;
    } else if (c == '[') {
      size_t end = 0;
      auto cls = parse_class(p, i, &end);
      if (!cls) return cls.error();
      out.push_back(*cls);
      i = end;
    } else {
      out.push_back(literal(static_cast<unsigned char>(c)));
      ++i;
    }
  }
  return out;
}

bool match_elements(const std::vector<GlobElement>& e, std::string_view t) {
  // Greedy scan that remembers the last '*': on a mismatch the star absorbs one more byte.
  // Correct because every non-star element consumes exactly one byte; O(|e| * |t|).
  constexpr size_t kNone = std::numeric_limits<size_t>::max();
  size_t pi = 0, ti = 0, star_p = kNone, star_t = 0;
  while (ti < t.size()) {
    if (pi < e.size() && !e[pi].star && e[pi].accepts(static_cast<unsigned char>(t[ti]))) {
      ++pi;
      ++ti;
    } else if (pi < e.size() && e[pi].star) {
      star_p = pi++;
      star_t = ti;
    } else if (star_p != kNone) {
      pi = star_p + 1;
      ti = ++star_t;
    } else {
      return false;
    }
  }
  while (pi < e.size() && e[pi].star) ++pi;
  return pi == e.size();
}

int specificity_of(const std::vector<GlobElement>& e) {
  int total = 0;
  for (const auto& el : e) {
    if (el.star) continue;
    int n = el.member_count();
    total += n == 1 ? 4 : n == 256 ? 1 : 2;
  }
  return total;
}

// Picks a readable byte from a non-empty set.
unsigned char pick_byte(const GlobElement& s) {
  static constexpr std::string_view kPreferred =
      "abcdefghijklmnopqrstuvwxyz0123456789_ABCDEFGHIJKLMNOPQRSTUVWXYZ-.";
  for (char c : kPreferred)
    if (s.accepts(static_cast<unsigned char>(c))) return static_cast<unsigned char>(c);
  for (unsigned c = 0x21; c < 0x7f; ++c)
    if (s.accepts(static_cast<unsigned char>(c))) return static_cast<unsigned char>(c);
  for (unsigned c = 0; c < 256; ++c)
    if (s.accepts(static_cast<unsigned char>(c))) return static_cast<unsigned char>(c);
  return 0;
}

// Shortest common string via 0-1 BFS over the product of the two pattern automata.
// State (i, j): i elements of a and j elements of b consumed. Moves: skip a '*' (free), or read
// one byte accepted by both current elements (a '*' reads any byte and stays put).
std::optional<std::string> common_string(const std::vector<GlobElement>& a,
                                         const std::vector<GlobElement>& b) {
  const size_t na = a.size(), nb = b.size(), width = nb + 1, count = (na + 1) * (nb + 1);
  constexpr size_t kUnseen = std::numeric_limits<size_t>::max();
  std::vector<size_t> dist(count, kUnseen), parent(count, kUnseen);
  std::vector<int> via(count, -1);  // byte read to reach the state, -1 for a free move
  std::deque<size_t> work;
  dist[0] = 0;
  work.push_back(0);
  const GlobElement any = all_bytes();
  auto relax = [&](size_t from, size_t to, int byte) {
    size_t d = dist[from] + (byte >= 0 ? 1 : 0);
    if (d >= dist[to]) return;
    dist[to] = d;
    parent[to] = from;
    via[to] = byte;
    if (byte >= 0)
      work.push_back(to);
    else
      work.push_front(to);
  };
  while (!work.empty()) {
    size_t s = work.front();
    work.pop_front();
    size_t i = s / width, j = s % width;
    if (i == na && j == nb) break;
    if (i < na && a[i].star) relax(s, (i + 1) * width + j, -1);
    if (j < nb && b[j].star) relax(s, i * width + j + 1, -1);
    if (i < na && j < nb && !(a[i].star && b[j].star)) {
      const GlobElement& sa = a[i].star ? any : a[i];
      const GlobElement& sb = b[j].star ? any : b[j];
      GlobElement both;
      for (size_t w = 0; w < 4; ++w) both.set[w] = sa.set[w] & sb.set[w];
      if (both.member_count() > 0) {
        size_t ni = a[i].star ? i : i + 1, nj = b[j].star ? j : j + 1;
        relax(s, ni * width + nj, pick_byte(both));
      }
    }
  }
  size_t target = count - 1;
  if (dist[target] == kUnseen) return std::nullopt;
  std::string out;
  for (size_t s = target; s != 0; s = parent[s])
    if (via[s] >= 0) out.push_back(static_cast<char>(via[s]));
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

int GlobElement::member_count() const {
  int n = 0;
  for (uint64_t w : set) n += std::popcount(w);
  return n;
}

Result<Glob> Glob::compile(std::string_view pattern) {
  auto els = parse(pattern);
  if (!els) return els.error();
  Glob g;
  g.elements_ = std::move(*els);
  return g;
}

bool Glob::match(std::string_view text) const {
  return match_elements(elements_, text);
}

int Glob::specificity() const {
  return specificity_of(elements_);
}

Status glob_validate(std::string_view pattern) {
  auto els = parse(pattern);
  if (!els) return els.error();
  return {};
}

bool glob_match(std::string_view pattern, std::string_view text) {
  auto els = parse(pattern);
  return els && match_elements(*els, text);
}

int glob_specificity(std::string_view pattern) {
  auto els = parse(pattern);
  return els ? specificity_of(*els) : 0;
}

bool globs_overlap(std::string_view a, std::string_view b) {
  return overlap_example(a, b).has_value();
}

std::optional<std::string> overlap_example(std::string_view a, std::string_view b) {
  auto ea = parse(a);
  auto eb = parse(b);
  if (!ea || !eb) return std::nullopt;
  return common_string(*ea, *eb);
}

RuleMatcher::RuleMatcher(const std::vector<std::string>& patterns) {
  for (size_t i = 0; i < patterns.size(); ++i) {
    auto g = Glob::compile(patterns[i]);
    if (!g) continue;
    int spec = g->specificity();
    entries_.push_back(Entry{std::move(*g), spec, static_cast<int>(i)});
  }
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const Entry& x, const Entry& y) { return x.specificity > y.specificity; });
}

Result<RuleMatcher> RuleMatcher::build(const std::vector<std::string>& patterns) {
  for (size_t i = 0; i < patterns.size(); ++i) {
    Status s = glob_validate(patterns[i]);
    if (!s)
      return Error::invalid("pattern " + std::to_string(i) + " \"" + patterns[i] +
                            "\": " + s.error().message);
  }
  return RuleMatcher(patterns);
}

int RuleMatcher::match(std::string_view tenant) const {
  for (const Entry& e : entries_)
    if (e.glob.match(tenant)) return e.index;
  return -1;
}

}  // namespace helios::tenant
