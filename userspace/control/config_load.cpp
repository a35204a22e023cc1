// Entry points: TOML text or a file in, a validated Config (or every error found) out.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "control/config_reader.h"

namespace helios::control {

GetEnv process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<std::string> read_file_from_disk(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{errno, std::strerror(errno)};
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return Error{errno, std::strerror(errno)};
  return content.str();
}

Result<Config> parse_config(std::string_view toml_text, const ParseOptions& options) {
  Diagnostics diag(options.source_name);
  toml::table root;
  try {
    root = toml::parse(toml_text, options.source_name);
  } catch (const toml::parse_error& e) {
    diag.error(static_cast<int>(e.source().begin.line),
               "TOML syntax error: " + std::string(e.description()));
    return Error::invalid(diag.formatted_errors().front());
  }
  Config config;
  config.source = options.source_name;
  ReadContext ctx(diag, options);
  parse_sections(root, config, ctx);
  validate_config(config, ctx);
  if (diag.has_errors()) {
    std::string message;
    for (const std::string& line : diag.formatted_errors()) {
      if (!message.empty()) message.push_back('\n');
      message += line;
    }
    return Error::invalid(std::move(message));
  }
  config.warnings = diag.formatted_warnings();
  config.shape.empty = root.empty();
  config.shape.backend = root.contains("backend");
  const toml::table* proxy = root["proxy"].as_table();
  config.shape.listen_address = proxy != nullptr && proxy->contains("listen_address");
  return config;
}

Result<Config> parse_config(std::string_view toml_text, std::string_view source_name,
                            const GetEnv& getenv) {
  ParseOptions options;
  options.source_name = std::string(source_name);
  options.getenv = getenv;
  return parse_config(toml_text, options);
}

Result<Config> load_config_file(const std::string& path, ParseOptions options) {
  Result<std::string> text = read_file_from_disk(path);
  if (!text)
    return Error{text.error().code, path + ": cannot read config: " + text.error().message};
  options.source_name = path;
  if (options.base_dir.empty()) {
    const size_t slash = path.rfind('/');
    options.base_dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  }
  return parse_config(*text, options);
}

Result<Config> load_config_file(const std::string& path) {
  return load_config_file(path, ParseOptions{});
}

}  // namespace helios::control
