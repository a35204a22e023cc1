// heliosproxy: the PostgreSQL connection pooler daemon.
#include <cstdio>

int main() {
  std::puts("heliosproxy: not yet wired");
  return 1;
}
