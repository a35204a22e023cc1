// io_uring user_data layout: [gen:32][slot:24][op:8]. The slot names a client (worker-local
// table) or a backend (global table) depending on the op; gen detects completions for a slot
// that has since been reused.
#pragma once

#include <cstdint>

namespace helios::proxy {

enum class Op : uint8_t {
  kAccept = 1,    // multishot accept on the worker's listener
  kClientRecv,    // multishot recv on a client socket           slot = client
  kClientSend,    // send to a client                            slot = client
  kBackendRecv,   // recv on a leased / cleaning backend         slot = backend
  kBackendSend,   // send to a backend (client's outgoing queue) slot = client
  kGrant,         // msg_ring: a pool granted backend `res`      slot = client
  kFail,          // msg_ring: the pool failed the wait (res = reason)  slot = client
  kMail,          // msg_ring: drain the mailbox
  kMsgSent,       // our own msg_ring SQE failed (success CQEs are skipped)
  kControlSend,   // proxy-internal query to a backend           slot = backend
  kCancelOp,      // our ASYNC_CANCEL of a backend recv          slot = backend
  kSpliceEvents,  // POLL_ADD on this worker's splice event ring (kernel data path)
};

inline uint64_t pack(Op op, uint32_t slot, uint32_t gen) {
  return uint64_t(op) | (uint64_t(slot & 0xffffff) << 8) | (uint64_t(gen) << 32);
}
inline Op op_of(uint64_t ud) {
  return Op(ud & 0xff);
}
inline uint32_t slot_of(uint64_t ud) {
  return uint32_t(ud >> 8) & 0xffffff;
}
inline uint32_t gen_of(uint64_t ud) {
  return uint32_t(ud >> 32);
}

}  // namespace helios::proxy
