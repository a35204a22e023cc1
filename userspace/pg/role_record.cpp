#include "pg/role_record.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>

namespace helios::pg {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char ch) { return char(std::tolower(ch)); });
  return out;
}

std::optional<size_t> column_named(const std::vector<std::string>& columns,
                                   std::initializer_list<std::string_view> names) {
  for (size_t i = 0; i < columns.size(); ++i)
    for (std::string_view n : names)
      if (lower(columns[i]) == n) return i;
  return std::nullopt;
}

bool truthy(std::string_view v) {
  std::string s = lower(v);
  return s == "t" || s == "true" || s == "on" || s == "1" || s == "yes" || s == "y";
}

}  // namespace

Result<std::optional<int64_t>> parse_valid_until(std::string_view text) {
  constexpr int64_t kMicros = 1000000;
  if (text == "infinity") return std::optional<int64_t>{};
  if (text == "-infinity") return std::optional<int64_t>{std::numeric_limits<int64_t>::min()};
  double epoch = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), epoch);
  if (ec == std::errc() && end == text.data() + text.size())
    return std::optional<int64_t>{int64_t(epoch * double(kMicros))};
  std::string s(text);
  long long year = 0;
  int mon = 0, day = 0, hour = 0, min = 0, sec = 0, used = 0;
  if (std::sscanf(s.c_str(), "%lld-%d-%d%*[ T]%d:%d:%d%n", &year, &mon, &day, &hour, &min, &sec,
                  &used) < 6 ||
      used <= 0)
    return Error::invalid("valid-until time \"" + s + "\" is not an ISO timestamp");
  std::string_view rest = std::string_view(s).substr(size_t(used));
  int64_t frac_us = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int64_t scale = 100000;
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) {
      frac_us += (rest.front() - '0') * scale;
      scale /= 10;
      rest.remove_prefix(1);
    }
  }
  int64_t offset_s = 0;
  if (!rest.empty() && (rest.front() == '+' || rest.front() == '-')) {
    int sign = rest.front() == '-' ? -1 : 1;
    rest.remove_prefix(1);
    int parts[3] = {0, 0, 0};
    for (int i = 0; i < 3 && !rest.empty(); ++i) {
      if (i > 0) {
        if (rest.front() != ':') break;
        rest.remove_prefix(1);
      }
      auto [p, e] = std::from_chars(rest.data(), rest.data() + rest.size(), parts[i]);
      if (e != std::errc()) return Error::invalid("valid-until time \"" + s + "\": bad UTC offset");
      rest.remove_prefix(size_t(p - rest.data()));
    }
    offset_s = sign * (int64_t(parts[0]) * 3600 + parts[1] * 60 + parts[2]);
  }
  if (rest == " BC") return std::optional<int64_t>{std::numeric_limits<int64_t>::min()};
  if (!rest.empty())
    return Error::invalid("valid-until time \"" + s + "\": unexpected \"" + std::string(rest) +
                          "\"");
  // Far-future years (PostgreSQL allows up to 294276) saturate: still "not expired".
  if (year > 200000) return std::optional<int64_t>{std::numeric_limits<int64_t>::max()};
  tm t{};
  t.tm_year = int(year - 1900);
  t.tm_mon = mon - 1;
  t.tm_mday = day;
  t.tm_hour = hour;
  t.tm_min = min;
  t.tm_sec = sec;
  time_t secs = timegm(&t);
  return std::optional<int64_t>{(int64_t(secs) - offset_s) * kMicros + frac_us};
}

Result<RoleRecord> role_from_row(const std::vector<std::string>& columns,
                                 const std::vector<std::optional<std::string>>& row) {
  std::optional<size_t> pw = column_named(columns, {"passwd", "rolpassword", "password"});
  std::optional<size_t> until, login;
  if (pw) {
    until = column_named(columns, {"valuntil", "rolvaliduntil", "valid_until"});
    login = column_named(columns, {"canlogin", "rolcanlogin", "usecanlogin"});
  } else {
    if (row.size() < 2)
      return Error::invalid("auth_query returned " + std::to_string(row.size()) +
                            " column(s); it needs the user name and the password");
    pw = 1;
    if (row.size() >= 3) until = 2;
    if (row.size() >= 4) login = 3;
  }
  RoleRecord rec;
  if (*pw < row.size() && row[*pw]) {
    auto cred = credential_from_stored(*row[*pw]);
    if (!cred) return cred.error();
    rec.secret = std::move(*cred);
  }
  if (until && *until < row.size() && row[*until]) {
    auto t = parse_valid_until(*row[*until]);
    if (!t) return t.error();
    rec.valid_until = *t;
  }
  if (login && *login < row.size() && row[*login]) rec.can_login = truthy(*row[*login]);
  return rec;
}

}  // namespace helios::pg
