#include "ops/admin_token.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/unique_fd.h"

namespace helios::ops {
namespace {

constexpr size_t kTokenBytes = 32;
constexpr size_t kMaxTokenFile = 4096;

Result<std::string> random_token() {
  unsigned char raw[kTokenBytes];
  if (RAND_bytes(raw, int(sizeof raw)) != 1)
    return Error{EIO, "cannot generate the admin token: no randomness from OpenSSL"};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * sizeof raw);
  for (unsigned char b : raw) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  return hex;
}

Result<std::string> read_first_line(int fd, const std::string& path) {
  std::string text;
  char buf[512];
  while (text.size() < kMaxTokenFile) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(path + ": cannot read the admin token");
    if (n == 0) break;
    text.append(buf, size_t(n));
  }
  size_t eol = text.find_first_of("\r\n");
  if (eol != std::string::npos) text.resize(eol);
  if (text.empty()) return Error{EINVAL, path + ": the admin token file is empty"};
  return text;
}

}  // namespace

std::string generated_token_path(const std::string& config_path, const config::GetEnv& getenv) {
  if (getenv) {
    if (auto v = getenv(kAdminTokenFileEnv); v && !v->empty()) return *v;
  }
  size_t slash = config_path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : config_path.substr(0, slash + 1);
  return dir + kAdminTokenFileName;
}

Result<std::string> read_token_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Error::from_errno(path + ": cannot open the admin token file");
  return read_first_line(fd.get(), path);
}

Result<std::string> ensure_token_file(const std::string& path) {
  return ensure_token_file(path, /*retry=*/true);
}

// `retry`: when another process creates the file between our open and our create, read it.
Result<std::string> ensure_token_file(const std::string& path, bool retry) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd) {
    struct stat st {};
    if (::fstat(fd.get(), &st) == 0 && (st.st_mode & 077) != 0) {
      log::warn("{}: the admin token file was readable by others; narrowing it to 0600", path);
      if (::fchmod(fd.get(), 0600) != 0)
        return Error::from_errno(path + ": cannot narrow the admin token file to 0600");
    }
    return read_first_line(fd.get(), path);
  }
  if (errno != ENOENT) return Error::from_errno(path + ": cannot open the admin token file");

  auto token = random_token();
  if (!token) return token.error();
  // O_EXCL: never write through a file (or link) that appeared meanwhile.
  UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  // Another process (the other instance of an online restart) created it meanwhile: read it.
  if (!out && errno == EEXIST && retry) return ensure_token_file(path, false);
  if (!out) return Error::from_errno(path + ": cannot create the admin token file");
  std::string line = *token + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(out.get(), line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Error e = Error::from_errno(path + ": cannot write the admin token file");
      ::unlink(path.c_str());
      return e;
    }
    done += size_t(n);
  }
  if (::fchmod(out.get(), 0600) != 0 || ::fsync(out.get()) != 0) {
    Error e = Error::from_errno(path + ": cannot write the admin token file");
    ::unlink(path.c_str());
    return e;
  }
  return *token;
}

}  // namespace helios::ops
