// SCRAM-SHA-256 for PostgreSQL: stored secrets, the server side (verifying clients) and the
// client side (logging into PostgreSQL). See each header for details.
#pragma once

#include "pg/scram_client.h"
#include "pg/scram_secret.h"
#include "pg/scram_server.h"
