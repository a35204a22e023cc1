// The process id half of the BackendKeyData the proxy gives its clients, and what a
// CancelRequest's process id says (docs/architecture.md "Cancel", docs/fleet.md "Cancels").
// The secret half is 32 random bits, always; routing lives in the process id only:
//
//   bit 31      0 from the proxy; 1 marks a CancelRequest one instance forwarded to another
//   bit 30      1: a key this proxy made (a process id without it is nobody's here)
//   without [fleet]: bits 29-24 worker, 23-0 client slot        (16,777,216 slots per worker)
//   with [fleet]:    bits 29-22 peer, 21-16 worker, 15-0 slot   (65,536 slots per worker)
//
// The peer is this instance's fleet-unique number (1..255; 0 = none yet), so the instance a
// CancelRequest reaches knows which instance owns the session. No I/O here.
#pragma once

#include <cstdint>

namespace helios::proxy {

class CancelKeyLayout {
 public:
  static constexpr uint32_t kMaxPeer = 255;
  static constexpr uint32_t kMaxWorkers = 64;

  explicit constexpr CancelKeyLayout(bool fleet) : peer_bits_(fleet ? 8 : 0) {}

  // Slots a worker may number (its clients held at once).
  constexpr uint32_t max_slots() const { return 1u << slot_bits(); }

  constexpr int32_t encode(uint32_t peer, uint32_t worker, uint32_t slot) const {
    uint32_t v = (1u << 30) | ((worker & 0x3f) << slot_bits()) | (slot & (max_slots() - 1));
    if (peer_bits_) v |= (peer & kMaxPeer) << (slot_bits() + 6);
    return int32_t(v);
  }

  struct Decoded {
    bool ours = false;       // made by a proxy (bit 30)
    bool forwarded = false;  // sent on by another instance: handled here, never forwarded again
    uint32_t peer = 0, worker = 0, slot = 0;
  };
  constexpr Decoded decode(int32_t pid) const {
    uint32_t v = uint32_t(pid);
    Decoded d;
    d.ours = (v >> 30 & 1) == 1;
    d.forwarded = (v >> 31) == 1;
    d.slot = v & (max_slots() - 1);
    d.worker = (v >> slot_bits()) & 0x3f;
    d.peer = peer_bits_ ? (v >> (slot_bits() + 6)) & kMaxPeer : 0;
    return d;
  }

  // The process id an instance forwards: the client's own, marked.
  static constexpr int32_t mark_forwarded(int32_t pid) { return int32_t(uint32_t(pid) | 1u << 31); }

 private:
  constexpr uint32_t slot_bits() const { return 24 - peer_bits_; }
  uint32_t peer_bits_;
};

}  // namespace helios::proxy
