// data_path = "auto": which path a lease takes, decided per lease from measured rules
// (docs/datapath.md, "data_path = auto" and "Measurements"). Pure: no I/O, tested alone.
#pragma once

#include <cstdint>

#include "helios/bpf_abi.h"

namespace helios::datapath {

enum class DataPathSetting : uint8_t { kUserspace, kKernel, kAuto };

struct LeaseFacts {
  DataPathSetting setting = DataPathSetting::kAuto;  // global or the tenant's override
  bool engine_available = false;  // SpliceEngine loaded (else: user space, always)
  splice_mode mode = SPLICE_MODE_TRANSACTION;
  // The worker must inspect the lease's SQL (transaction mode with pin detection or tracked
  // SET): the kernel does not read SQL, so such a lease stays in user space under "auto".
  bool needs_sql_inspection = true;
  uint64_t expected_bytes_to_client = 0;  // e.g. this client's moving average; 0 = unknown
  bool copy_out = false;                  // the first statement is COPY ... TO STDOUT
};

struct AutoRules {
  // Splice session-mode leases under "auto". Off: on the measured kernel a spliced pair was not
  // faster than the user-space relay for small messages (0.7x) and not reliably for big ones.
  bool splice_session = false;
  // Splice a lease expected to return at least this many bytes (0 = never by size).
  uint64_t splice_min_bytes = 0;
  // Splice COPY TO STDOUT leases (measured 0.45x: off).
  bool splice_copy_out = false;
};

struct PathDecision {
  bool kernel = false;
  const char* why = "";  // for the debug log and the lease metric label
};

PathDecision choose_data_path(const LeaseFacts& facts, const AutoRules& rules);

}  // namespace helios::datapath
