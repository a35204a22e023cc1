#include "config/config_reader.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "config/duration.h"

namespace helios::config {

// ---- ${ENV} substitution -----------------------------------------------------------------------

namespace {
bool env_name_char(char c, bool first) {
  if (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return true;
  return !first && c >= '0' && c <= '9';
}
}  // namespace

Result<std::string> substitute_env(std::string_view text, const GetEnv& getenv, bool unset_ok,
                                   std::vector<std::string>* unset) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '$') {
      out.push_back(c);
      ++i;
      continue;
    }
    if (text.substr(i, 3) == "$${") {  // escaped: a literal "${"
      out += "${";
      i += 3;
      continue;
    }
    if (text.substr(i, 2) != "${") {  // a lone "$" is literal
      out.push_back(c);
      ++i;
      continue;
    }
    const size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Error::invalid("unterminated \"${\" (write \"$${\" for a literal \"${\")");
    }
    const std::string_view name = text.substr(i + 2, close - i - 2);
    bool valid = !name.empty();
    for (size_t k = 0; k < name.size() && valid; ++k) valid = env_name_char(name[k], k == 0);
    if (!valid) {
      return Error::invalid("\"${" + std::string(name) +
                            "}\" is not a valid environment variable reference (letters, digits "
                            "and _; write \"$${\" for a literal \"${\")");
    }
    std::optional<std::string> value = getenv ? getenv(name) : std::nullopt;
    if (!value) {
      if (!unset_ok) {
        return Error::invalid("${" + std::string(name) + "} is not set in the environment");
      }
      if (unset) unset->push_back(std::string(name));
    } else {
      out += *value;
    }
    i = close + 1;
  }
  return out;
}

// ---- did-you-mean ------------------------------------------------------------------------------

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
  const size_t limit = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

// ---- Diagnostics -------------------------------------------------------------------------------

std::string one_line(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

std::vector<std::string> Diagnostics::format(std::vector<Diagnostic> list) const {
  std::stable_sort(list.begin(), list.end(),
                   [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
  std::vector<std::string> out;
  out.reserve(list.size());
  for (const Diagnostic& d : list) {
    // Messages quote config text (keys, ${NAMES}, what toml++ saw), which may hold newlines.
    if (d.line > 0) {
      out.push_back(one_line(source_ + ":" + std::to_string(d.line) + ": " + d.message));
    } else {
      out.push_back(one_line(source_ + ": " + d.message));
    }
  }
  return out;
}

// ---- ReadContext -------------------------------------------------------------------------------

ReadContext::ReadContext(Diagnostics& diag, const ParseOptions& options)
    : diag_(diag),
      options_(options),
      getenv_(options.getenv ? options.getenv : process_environment()),
      read_file_(options.read_file ? options.read_file : ReadSecretFile(read_file_from_disk)) {}

std::string ReadContext::resolve_path(const std::string& path) const {
  if (path.empty() || path.front() == '/' || options_.base_dir.empty()) return path;
  std::string base = options_.base_dir;
  if (base.back() != '/') base.push_back('/');
  return base + path;
}

std::string ReadContext::os_user() const {
  if (options_.os_user) return options_.os_user();
  const passwd* pw = getpwuid(geteuid());
  return pw && pw->pw_name ? std::string(pw->pw_name) : std::string();
}

int ReadContext::line_of(const std::string& label, std::string_view key) const {
  auto it = lines_.find(label + "\x1f" + std::string(key));
  return it == lines_.end() ? 0 : it->second;
}

void ReadContext::record_line(const std::string& label, std::string_view key, int line) {
  lines_[label + "\x1f" + std::string(key)] = line;
}

void ReadContext::know_key(const std::string& schema, std::string_view key) {
  known_[schema].emplace(key);
}

void ReadContext::unknown_key(int line, std::string label, std::string schema, std::string key) {
  unknown_.push_back({line, std::move(label), std::move(schema), std::move(key)});
}

std::string ReadContext::belongs_hint(const std::string& key,
                                      const std::string& except_schema) const {
  std::vector<std::string> owners;
  for (const auto& [schema, keys] : known_) {
    if (schema != except_schema && keys.count(key)) owners.push_back(schema);
  }
  if (owners.empty()) return "";
  std::string out = " (it belongs in ";
  for (size_t i = 0; i < owners.size(); ++i) {
    if (i > 0) out += i + 1 == owners.size() ? " or " : ", ";
    out += owners[i];
  }
  return out + ")";
}

void ReadContext::report_unknown_keys() {
  for (const Unknown& u : unknown_) {
    const std::set<std::string>& own = known_[u.schema];
    std::string message = "unknown key \"" + u.key + "\" in " + u.label;
    if (auto best = closest_match(u.key, {own.begin(), own.end()})) {
      message += " (did you mean \"" + *best + "\"?)";
    } else {
      message += belongs_hint(u.key, u.schema);
    }
    diag_.error(u.line, std::move(message));
  }
  unknown_.clear();
}

// ---- SectionReader -----------------------------------------------------------------------------

std::string_view toml_type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      return "nothing";
  }
  return "an unknown type";
}

int line_of(const toml::node& node) {
  return static_cast<int>(node.source().begin.line);
}

SectionReader::SectionReader(ReadContext& ctx, const toml::table* table, std::string label,
                             std::string schema, int line)
    : ctx_(ctx), table_(table), label_(std::move(label)), schema_(std::move(schema)), line_(line) {
  if (table_ != nullptr) ctx_.record_line(label_, "", line_);
}

const toml::node* SectionReader::get(std::string_view key) {
  asked_.emplace(key);
  ctx_.know_key(schema_, key);
  if (table_ == nullptr) return nullptr;
  auto it = table_->find(key);
  if (it == table_->end()) return nullptr;
  ctx_.record_line(label_, key, static_cast<int>(it->first.source().begin.line));
  return &it->second;
}

bool SectionReader::has(std::string_view key) {
  return get(key) != nullptr;
}

int SectionReader::line_of(std::string_view key) const {
  if (table_ == nullptr) return 0;
  auto it = table_->find(key);
  if (it == table_->end()) return 0;
  return static_cast<int>(it->first.source().begin.line);
}

void SectionReader::error(std::string_view key, std::string message) {
  const int line = line_of(key);
  ctx_.diag().error(line ? line : line_, label_ + " " + std::string(key) + ": " + message);
}

void SectionReader::error_at_section(std::string message) {
  ctx_.diag().error(line_, label_ + ": " + message);
}

void SectionReader::type_error(std::string_view key, const toml::node& node,
                               std::string_view expected) {
  error(key, "expected " + std::string(expected) + ", got " + std::string(toml_type_name(node)));
}

void SectionReader::element_type_error(const std::string& element, const toml::node& node,
                                       std::string_view expected) {
  ctx_.diag().error(config::line_of(node), label_ + " " + element + ": expected " +
                                               std::string(expected) + ", got " +
                                               std::string(toml_type_name(node)));
}

bool SectionReader::string_of(std::string_view key, const toml::node& node, std::string& out) {
  const auto* s = node.as_string();
  if (s == nullptr) {
    type_error(key, node, "a string");
    return false;
  }
  std::vector<std::string> unset;
  const bool unset_ok = !ctx_.options().resolve_secrets;
  Result<std::string> value = substitute_env(
      s->get(), [this](std::string_view n) { return ctx_.getenv(n); }, unset_ok, &unset);
  if (!value) {
    const int line = line_of(key);
    ctx_.diag().error(line ? line : line_, label_ + ": " + value.error().message);
    return false;
  }
  for (const std::string& name : unset) {
    ctx_.diag().warn(line_of(key), label_ + " " + std::string(key) + ": ${" + name +
                                       "} is not set; checked as \"\"");
  }
  out = std::move(value.value());
  return true;
}

bool SectionReader::read_string(std::string_view key, std::string& out) {
  const toml::node* node = get(key);
  return node && string_of(key, *node, out);
}

bool SectionReader::read_bool(std::string_view key, bool& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  if (const auto* b = node->as_boolean()) {
    out = b->get();
    return true;
  }
  type_error(key, *node, "true or false");
  return false;
}

bool SectionReader::read_int(std::string_view key, int64_t& out, int64_t min, int64_t max) {
  const toml::node* node = get(key);
  if (!node) return false;
  const auto* i = node->as_integer();
  if (i == nullptr) {
    type_error(key, *node, "an integer");
    return false;
  }
  const int64_t v = i->get();
  if (v < min || v > max) {
    if (max == std::numeric_limits<int64_t>::max()) {
      error(key, "must be at least " + std::to_string(min) + ", got " + std::to_string(v));
    } else {
      error(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                     ", got " + std::to_string(v));
    }
    return false;
  }
  out = v;
  return true;
}

bool SectionReader::read_port(std::string_view key, uint16_t& out) {
  int64_t v = 0;
  if (!read_int(key, v, 1, 65535)) return false;
  out = static_cast<uint16_t>(v);
  return true;
}

namespace {
std::string format_number(double v) {
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

bool SectionReader::read_double(std::string_view key, double& out, double min, double max) {
  const toml::node* node = get(key);
  if (!node) return false;
  double v = 0;
  if (const auto* f = node->as_floating_point()) {
    v = f->get();
  } else if (const auto* i = node->as_integer()) {
    v = static_cast<double>(i->get());
  } else {
    type_error(key, *node, "a number");
    return false;
  }
  if (!std::isfinite(v) || v < min || v > max) {
    error(key, "must be between " + format_number(min) + " and " + format_number(max) + ", got " +
                   format_number(v));
    return false;
  }
  out = v;
  return true;
}

bool SectionReader::read_duration(std::string_view key, Nanos& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  if (const auto* i = node->as_integer()) {
    const int64_t secs = i->get();
    if (secs < 0 || secs > std::numeric_limits<int64_t>::max() / kNanosPerSec) {
      error(key,
            "a duration in seconds must be between 0 and 9223372036, got " + std::to_string(secs));
      return false;
    }
    out = secs * kNanosPerSec;
    return true;
  }
  if (node->is_string()) {
    std::string text;
    if (!string_of(key, *node, text)) return false;
    Result<Nanos> d = parse_duration(text);
    if (!d) {
      error(key, "\"" + text + "\" is not a duration: " + d.error().message);
      return false;
    }
    out = *d;
    return true;
  }
  type_error(key, *node,
             "a duration (a string like \"5s\", \"250ms\", \"1h30m\", or integer seconds)");
  return false;
}

bool SectionReader::read_seconds(std::string_view key, Nanos& out) {
  int64_t secs = 0;
  if (!read_int(key, secs, 0, std::numeric_limits<int64_t>::max() / kNanosPerSec)) return false;
  out = secs * kNanosPerSec;
  return true;
}

bool SectionReader::read_host_port(std::string_view key, HostPort& out, bool ip_literal_only) {
  std::string text;
  if (!read_string(key, text)) return false;
  Result<HostPort> hp = parse_host_port(text, ip_literal_only);
  if (!hp) {
    error(key, hp.error().message);
    return false;
  }
  out = *hp;
  return true;
}

bool SectionReader::read_string_array(std::string_view key, std::vector<std::string>& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  const auto* arr = node->as_array();
  if (arr == nullptr) {
    type_error(key, *node, "an array of strings");
    return false;
  }
  std::vector<std::string> values;
  bool ok = true;
  for (size_t i = 0; i < arr->size(); ++i) {
    std::string v;
    const std::string element = std::string(key) + "[" + std::to_string(i) + "]";
    if (!(*arr)[i].is_string()) {
      element_type_error(element, (*arr)[i], "a string");
      ok = false;
    } else if (string_of(key, (*arr)[i], v)) {
      values.push_back(std::move(v));
    } else {
      ok = false;
    }
  }
  if (ok) out = std::move(values);
  return ok;
}

bool SectionReader::read_double_array(std::string_view key, std::vector<double>& out) {
  const toml::node* node = get(key);
  if (!node) return false;
  const auto* arr = node->as_array();
  if (arr == nullptr) {
    type_error(key, *node, "an array of numbers");
    return false;
  }
  std::vector<double> values;
  bool ok = true;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::node& n = (*arr)[i];
    if (const auto* f = n.as_floating_point()) {
      values.push_back(f->get());
    } else if (const auto* in = n.as_integer()) {
      values.push_back(static_cast<double>(in->get()));
    } else {
      element_type_error(std::string(key) + "[" + std::to_string(i) + "]", n, "a number");
      ok = false;
    }
  }
  if (ok) out = std::move(values);
  return ok;
}

std::optional<size_t> SectionReader::read_choice_index(std::string_view key,
                                                       const std::vector<std::string_view>& names) {
  std::string value;
  if (!read_string(key, value)) return std::nullopt;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == value) return i;
  }
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) list += ", ";
    list += "\"" + std::string(names[i]) + "\"";
  }
  const int line = line_of(key);
  ctx_.diag().error(line ? line : line_, label_ + " " + std::string(key) + " must be one of " +
                                             list + ", got \"" + value + "\"");
  return std::nullopt;
}

std::optional<size_t> SectionReader::read_bool_or_choice_index(
    std::string_view key, const std::vector<std::string_view>& names) {
  const toml::node* node = get(key);
  if (!node) return std::nullopt;
  if (const auto* b = node->as_boolean()) return b->get() ? 1 : 0;
  std::string list = "true, false";
  for (size_t i = 0; i < names.size(); ++i)
    list +=
        std::string(i + 1 == names.size() ? " or " : ", ") + "\"" + std::string(names[i]) + "\"";
  std::string value;
  if (const auto* s = node->as_string()) {
    if (!string_of(key, *node, value)) return std::nullopt;
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == value) return i + 2;
    error(key, "must be " + list + ", got \"" + value + "\"");
    return std::nullopt;
  }
  type_error(key, *node, list);
  return std::nullopt;
}

bool SectionReader::read_secret(std::string_view value_key, std::string_view file_key,
                                std::string& out) {
  const toml::node* value_node = get(value_key);
  const toml::node* file_node = get(file_key);
  if (value_node && file_node) {
    error(file_key, "set either " + std::string(value_key) + " (line " +
                        std::to_string(line_of(value_key)) + ") or " + std::string(file_key) +
                        ", not both");
    return false;
  }
  if (value_node) {
    if (!string_of(value_key, *value_node, out)) return false;
    const auto* raw = value_node->as_string();
    if (raw && !raw->get().empty() && raw->get().find("${") == std::string::npos) {
      ctx_.diag().warn(line_of(value_key), label_ + " " + std::string(value_key) +
                                               " is written in the config file; prefer " +
                                               std::string(file_key) + " or \"${ENV_VAR}\"");
    }
    return true;
  }
  if (!file_node) return false;
  std::string path;
  if (!string_of(file_key, *file_node, path) || path.empty()) return false;
  if (!ctx_.options().resolve_secrets) {
    ctx_.diag().warn(line_of(file_key), label_ + " " + std::string(file_key) + " \"" + path +
                                            "\" was not read (checked without secrets)");
    return false;
  }
  const std::string resolved = ctx_.resolve_path(path);
  Result<std::string> content = ctx_.read_file(resolved);
  if (!content) {
    error(file_key, "cannot read \"" + resolved + "\": " + content.error().message);
    return false;
  }
  std::string secret = *content;
  const size_t eol = secret.find('\n');
  if (eol != std::string::npos) secret.resize(eol);
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) {
    error(file_key, "\"" + resolved + "\" is empty (the secret is its first line)");
    return false;
  }
  out = std::move(secret);
  return true;
}

const toml::table* SectionReader::sub_table(std::string_view key) {
  const toml::node* node = get(key);
  if (!node) return nullptr;
  if (const auto* t = node->as_table()) return t;
  type_error(key, *node, "a table");
  return nullptr;
}

const toml::array* SectionReader::table_array(std::string_view key) {
  const toml::node* node = get(key);
  if (!node) return nullptr;
  const auto* arr = node->as_array();
  if (arr == nullptr || !arr->is_array_of_tables()) {
    type_error(key, *node, "an array of tables ([[...]] sections)");
    return nullptr;
  }
  return arr;
}

void SectionReader::finish() {
  if (table_ == nullptr) return;
  for (const auto& [key, node] : *table_) {
    (void)node;
    if (asked_.count(key.str()) == 0) {
      ctx_.unknown_key(static_cast<int>(key.source().begin.line), label_, schema_,
                       std::string(key.str()));
    }
  }
}

}  // namespace helios::config
