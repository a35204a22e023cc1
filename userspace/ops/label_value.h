// Prometheus label values from names clients choose (tenant from application_name, database,
// user): the exposition format wants valid UTF-8, so invalid bytes and control characters are
// replaced with U+FFFD and the value is capped (never splitting a character).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace helios::ops {

constexpr size_t kMaxLabelValueBytes = 128;

std::string sanitize_label_value(std::string_view raw, size_t max_bytes = kMaxLabelValueBytes);

}  // namespace helios::ops
