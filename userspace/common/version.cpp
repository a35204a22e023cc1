namespace helios {
const char* version() { return HELIOS_VERSION; }
}  // namespace helios
