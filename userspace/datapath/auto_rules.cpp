#include "datapath/auto_rules.h"

namespace helios::datapath {

PathDecision choose_data_path(const LeaseFacts& f, const AutoRules& r) {
  if (f.setting == DataPathSetting::kUserspace) return {false, "configured userspace"};
  if (!f.engine_available) return {false, "kernel path unavailable"};
  if (f.setting == DataPathSetting::kKernel) return {true, "configured kernel"};
  // auto
  if (f.needs_sql_inspection && f.mode != SPLICE_MODE_SESSION)
    return {false, "statements need inspection"};
  if (f.copy_out) return {r.splice_copy_out, r.splice_copy_out ? "copy out" : "copy out: user"};
  if (r.splice_min_bytes && f.expected_bytes_to_client >= r.splice_min_bytes)
    return {true, "large result expected"};
  if (f.mode == SPLICE_MODE_SESSION && r.splice_session) return {true, "session lease"};
  return {false, "small messages: user space is faster"};
}

}  // namespace helios::datapath
