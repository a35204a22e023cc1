// PostgreSQL frontend/backend protocol v3: constants only (codes, message type bytes, limits).
// Reference: PostgreSQL docs, "Frontend/Backend Protocol" -> "Message Formats".
#pragma once

#include <cstddef>
#include <cstdint>

namespace helios::pg {

// Version and special request codes carried in the untyped first packet.
constexpr int32_t make_protocol(int major, int minor) {
  return (major << 16) | minor;
}
constexpr int protocol_major(int32_t code) {
  return static_cast<int>((uint32_t(code) >> 16));
}
constexpr int protocol_minor(int32_t code) {
  return static_cast<int>(uint32_t(code) & 0xffff);
}

constexpr int32_t kProtocolV3 = make_protocol(3, 0);               // 196608
constexpr int32_t kCancelRequestCode = make_protocol(1234, 5678);  // 80877102
constexpr int32_t kSslRequestCode = make_protocol(1234, 5679);     // 80877103
constexpr int32_t kGssEncRequestCode = make_protocol(1234, 5680);  // 80877104
static_assert(kProtocolV3 == 196608 && kCancelRequestCode == 80877102 &&
              kSslRequestCode == 80877103 && kGssEncRequestCode == 80877104);

// Newest protocol version this codec speaks: 3.0. NegotiateProtocolVersion carries it as the
// full version code (PostgreSQL sends PG_PROTOCOL_LATEST = 196608 there, and libpq 17+ reads
// it that way, although the docs call the field "newest minor version").
constexpr int kNewestMinorVersion = 0;
constexpr int32_t kNewestProtocol = make_protocol(3, kNewestMinorVersion);

// PostgreSQL's MAX_STARTUP_PACKET_LENGTH: a larger startup packet is refused.
constexpr size_t kMaxStartupPacket = 10000;
// Fixed sizes of the special requests (length field included).
constexpr size_t kSslRequestLength = 8;
constexpr size_t kGssEncRequestLength = 8;
constexpr size_t kCancelRequestLength = 16;

// Every typed message: 1 type byte + int32 length (which counts itself, not the type byte).
// (The 5-byte header size, kHeaderSize, is defined by the streaming framer in framer.h.)
constexpr size_t kLengthSize = 4;

// Prefix of startup option names for protocol extensions ("_pq_.xxx"); none are supported.
constexpr char kProtocolOptionPrefix[] = "_pq_.";

// Message type bytes sent by the client (frontend).
namespace fe {
constexpr char kBind = 'B';
constexpr char kClose = 'C';
constexpr char kCopyData = 'd';
constexpr char kCopyDone = 'c';
constexpr char kCopyFail = 'f';
constexpr char kDescribe = 'D';
constexpr char kExecute = 'E';
constexpr char kFlush = 'H';
constexpr char kFunctionCall = 'F';
constexpr char kParse = 'P';
// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse all use 'p'.
constexpr char kPassword = 'p';
constexpr char kQuery = 'Q';
constexpr char kSync = 'S';
constexpr char kTerminate = 'X';
}  // namespace fe

// Message type bytes sent by the server (backend).
namespace be {
constexpr char kAuthentication = 'R';
constexpr char kBackendKeyData = 'K';
constexpr char kBindComplete = '2';
constexpr char kCloseComplete = '3';
constexpr char kCommandComplete = 'C';
constexpr char kCopyBothResponse = 'W';
constexpr char kCopyData = 'd';
constexpr char kCopyDone = 'c';
constexpr char kCopyInResponse = 'G';
constexpr char kCopyOutResponse = 'H';
constexpr char kDataRow = 'D';
constexpr char kEmptyQuery = 'I';
constexpr char kErrorResponse = 'E';
constexpr char kFunctionCallResponse = 'V';
constexpr char kNegotiateProtocolVersion = 'v';
constexpr char kNoData = 'n';
constexpr char kNoticeResponse = 'N';
constexpr char kNotificationResponse = 'A';
constexpr char kParameterDescription = 't';
constexpr char kParameterStatus = 'S';
constexpr char kParseComplete = '1';
constexpr char kPortalSuspended = 's';
constexpr char kReadyForQuery = 'Z';
constexpr char kRowDescription = 'T';
}  // namespace be

// Authentication request codes (first int32 of an 'R' message).
constexpr int32_t kAuthOk = 0;
constexpr int32_t kAuthKerberosV5 = 2;
constexpr int32_t kAuthCleartext = 3;
constexpr int32_t kAuthMd5 = 5;
constexpr int32_t kAuthGss = 7;
constexpr int32_t kAuthGssContinue = 8;
constexpr int32_t kAuthSspi = 9;
constexpr int32_t kAuthSasl = 10;
constexpr int32_t kAuthSaslContinue = 11;
constexpr int32_t kAuthSaslFinal = 12;

// Transaction status in ReadyForQuery.
constexpr char kTxIdle = 'I';
constexpr char kTxInBlock = 'T';
constexpr char kTxFailed = 'E';
constexpr bool is_valid_tx_status(char c) {
  return c == kTxIdle || c == kTxInBlock || c == kTxFailed;
}

// Kind byte of Describe and Close.
constexpr char kTargetStatement = 'S';
constexpr char kTargetPortal = 'P';

// Format codes in Bind / RowDescription.
constexpr int16_t kFormatText = 0;
constexpr int16_t kFormatBinary = 1;

// Type OIDs the proxy itself uses when it synthesizes results.
constexpr int32_t kOidText = 25;
constexpr int32_t kOidInt8 = 20;

}  // namespace helios::pg
