// [backend] sslmode / sslrootcert as the blocking client and the connector want them.
#pragma once

#include "common/result.h"
#include "control/config.h"
#include "pool/pg_conn.h"

namespace helios::server {

Result<pool::ServerTls> server_tls_from(const control::Config& cfg);

}  // namespace helios::server
