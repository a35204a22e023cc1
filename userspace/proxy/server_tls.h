// [backend] sslmode / sslrootcert as the blocking client and the connector want them.
#pragma once

#include "common/result.h"
#include "config/config.h"
#include "pool/pg_conn.h"

namespace helios::proxy {

Result<pool::ServerTls> server_tls_from(const config::Config& cfg);

}  // namespace helios::proxy
