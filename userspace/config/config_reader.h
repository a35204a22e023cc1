// Internals of the config loader: diagnostics with source lines, a typed reader for one TOML
// table that remembers which keys it knows (so unknown keys are reported with did-you-mean),
// ${ENV} substitution and secret files. Used by config_parse.cpp and config_validate.cpp.
#pragma once

#include <toml++/toml.h>

#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"

namespace helios::config {

// Replaces ${NAME} with the variable's value; "$${" is a literal "${". A "$" not followed by "{"
// is literal. Errors: "${NAME} is not set in the environment", "unterminated ${ ...".
// unset_ok: unset variables become "" and their names are appended to *unset.
Result<std::string> substitute_env(std::string_view text, const GetEnv& getenv,
                                   bool unset_ok = false,
                                   std::vector<std::string>* unset = nullptr);

// Edit distance, for did-you-mean suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
// The closest candidate, if close enough to be a plausible typo.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

// `text` with newlines, tabs and other control characters escaped (\n, \t, \x01): one line.
std::string one_line(std::string_view text);

struct Diagnostic {
  int line = 0;
  std::string message;
};

class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}
  void error(int line, std::string message) { errors_.push_back({line, std::move(message)}); }
  void warn(int line, std::string message) { warnings_.push_back({line, std::move(message)}); }
  bool has_errors() const { return !errors_.empty(); }
  size_t error_count() const { return errors_.size(); }
  // "source:line: message", sorted by line (stable), each one line (one_line()).
  std::vector<std::string> formatted_errors() const { return format(errors_); }
  std::vector<std::string> formatted_warnings() const { return format(warnings_); }
  const std::string& source() const { return source_; }

 private:
  std::vector<std::string> format(std::vector<Diagnostic> list) const;
  std::string source_;
  std::vector<Diagnostic> errors_;
  std::vector<Diagnostic> warnings_;
};

// State shared by every section reader of one load.
class ReadContext {
 public:
  ReadContext(Diagnostics& diag, const ParseOptions& options);

  Diagnostics& diag() { return diag_; }
  const ParseOptions& options() const { return options_; }
  std::optional<std::string> getenv(std::string_view name) const { return getenv_(name); }
  Result<std::string> read_file(const std::string& path) const { return read_file_(path); }
  std::string resolve_path(const std::string& path) const;  // against options().base_dir
  std::string os_user() const;

  // Line of a key read by any section (label as in messages: "[backend]"); 0 when absent.
  int line_of(const std::string& label, std::string_view key) const;
  void record_line(const std::string& label, std::string_view key, int line);

  // Unknown keys are reported at the end, once every schema knows its keys, so a key that
  // belongs to another section can say so.
  void know_key(const std::string& schema, std::string_view key);
  void unknown_key(int line, std::string label, std::string schema, std::string key);
  void report_unknown_keys();
  // " (it belongs in [a] or [b])" when other schemas know the key, else "".
  std::string belongs_hint(const std::string& key, const std::string& except_schema) const;

 private:
  struct Unknown {
    int line;
    std::string label, schema, key;
  };
  Diagnostics& diag_;
  const ParseOptions& options_;
  GetEnv getenv_;
  ReadSecretFile read_file_;
  std::map<std::string, int> lines_;
  std::map<std::string, std::set<std::string>> known_;
  std::vector<Unknown> unknown_;
};

// Reads typed values out of one TOML table (which may be absent: every read then leaves the
// default). Each read registers the key as known. A present key with a bad value is reported
// and leaves the output untouched; reads return true only when a valid value was stored.
class SectionReader {
 public:
  // label: as shown in messages ("[backend]", "[[tenant_quotas.limits]] #2");
  // schema: the key set it belongs to ("backend", "tenant_quotas.limits").
  SectionReader(ReadContext& ctx, const toml::table* table, std::string label, std::string schema,
                int line);

  const std::string& label() const { return label_; }
  int line() const { return line_; }
  bool present() const { return table_ != nullptr; }
  bool has(std::string_view key);           // registers the key as known
  int line_of(std::string_view key) const;  // 0 when absent

  bool read_string(std::string_view key, std::string& out);
  bool read_bool(std::string_view key, bool& out);
  bool read_int(std::string_view key, int64_t& out, int64_t min, int64_t max);
  bool read_port(std::string_view key, uint16_t& out);
  bool read_double(std::string_view key, double& out, double min, double max);
  bool read_duration(std::string_view key, Nanos& out);  // "5s" or integer seconds
  bool read_seconds(std::string_view key, Nanos& out);   // integer seconds only (*_secs)
  bool read_host_port(std::string_view key, HostPort& out, bool ip_literal_only);
  bool read_string_array(std::string_view key, std::vector<std::string>& out);
  bool read_double_array(std::string_view key, std::vector<double>& out);
  // A value from a fixed set of spellings: "[proxy] mode must be one of "a", "b", got "c"".
  template <typename E>
  bool read_choice(std::string_view key, E& out,
                   std::initializer_list<std::pair<std::string_view, E>> choices) {
    std::vector<std::string_view> names;
    for (const auto& c : choices) names.push_back(c.first);
    std::optional<size_t> idx = read_choice_index(key, names);
    if (!idx) return false;
    out = (choices.begin() + *idx)->second;
    return true;
  }
  // true, false, or one of a fixed set of strings ("auto"): "[proxy] k must be true, false or
  // "auto", got ..." otherwise.
  template <typename E>
  bool read_bool_or_choice(std::string_view key, E& out, E if_true, E if_false,
                           std::initializer_list<std::pair<std::string_view, E>> choices) {
    std::vector<std::string_view> names;
    for (const auto& c : choices) names.push_back(c.first);
    std::optional<size_t> idx = read_bool_or_choice_index(key, names);
    if (!idx) return false;
    out = *idx == 0 ? if_false : *idx == 1 ? if_true : (choices.begin() + (*idx - 2))->second;
    return true;
  }
  // A secret given inline (value_key, ${ENV} allowed) or as a file (file_key, first line).
  // Setting both is an error. Returns true when one was given and read.
  bool read_secret(std::string_view value_key, std::string_view file_key, std::string& out);

  const toml::table* sub_table(std::string_view key);  // registers; type-checks
  const toml::array* table_array(std::string_view key);

  // Reports every key of the table that no read asked for.
  void finish();

  void error(std::string_view key, std::string message);  // "<label> <key>: message" at key line
  void error_at_section(std::string message);             // "<label>: message" at section line

 private:
  const toml::node* get(std::string_view key);
  bool string_of(std::string_view key, const toml::node& node, std::string& out);
  void type_error(std::string_view key, const toml::node& node, std::string_view expected);
  void element_type_error(const std::string& element, const toml::node& node,
                          std::string_view expected);
  std::optional<size_t> read_choice_index(std::string_view key,
                                          const std::vector<std::string_view>& names);
  // 0 = false, 1 = true, 2 + i = names[i].
  std::optional<size_t> read_bool_or_choice_index(std::string_view key,
                                                  const std::vector<std::string_view>& names);

  ReadContext& ctx_;
  const toml::table* table_;
  std::string label_;
  std::string schema_;
  int line_;
  std::set<std::string, std::less<>> asked_;
};

std::string_view toml_type_name(const toml::node& node);
int line_of(const toml::node& node);
Result<HostPort> parse_host_port(std::string_view text, bool ip_literal_only);
Result<Cidr> parse_cidr(std::string_view text);
bool is_ip_literal(std::string_view host);

// The two passes, in config_parse.cpp and config_validate.cpp.
void parse_sections(const toml::table& root, Config& config, ReadContext& ctx);
// [fleet] (config_fleet.cpp).
void read_fleet(const toml::table& root, Config& config, ReadContext& ctx);
void validate_config(Config& config, ReadContext& ctx);

}  // namespace helios::config
