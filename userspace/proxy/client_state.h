// The states of a client and the transitions between them. Worker::set_state() is the one place
// that changes a client's state; it asks client_transition_allowed() first and refuses (asserts in
// a debug build; counts helios_proxy_state_transitions_refused_total in a release build) any
// transition not listed here. The table is the documentation of the machine:
//
//   free -> startup -> (auth_lookup ->) auth_sasl | auth_md5 -> welcome | idle
//   idle -> throttled -> idle | queued          idle | throttled -> queued -> active | idle
//   welcome -> active (a first backend teaches the server's parameters) -> idle
//   active -> idle (lease ended)                  any state but free -> closing -> free
#pragma once

#include <cstdint>

namespace helios::proxy {

enum class ClientState : uint8_t {
  kStartup,     // reading the startup packet (again after answering SSLRequest/GSSENCRequest)
  kAuthLookup,  // waiting for the user's secret (auth_query on a connector thread)
  kAuthSasl,    // SCRAM-SHA-256 exchange
  kAuthMd5,     // waiting for the md5 PasswordMessage
  kWelcome,     // authenticated; waiting for a first backend to learn the server's parameters
  kIdle,        // between transactions, no backend
  kThrottled,   // has statements to run but its tenant is over max_qps: waiting for tokens
  kQueued,      // has work for a backend; waiting in its pool's fair queue
  kActive,      // leased: paired with a backend
  kClosing,     // no more input; flushing what is queued, then closing
  kFree,        // slot unused
};

const char* to_string(ClientState s);

// True if a client may go from `from` to `to`. Staying in a state is allowed (a no-op) except
// for a free slot.
bool client_transition_allowed(ClientState from, ClientState to);

}  // namespace helios::proxy
