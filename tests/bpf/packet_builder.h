// Crafted frames for BPF_PROG_TEST_RUN: Ethernet (+VLAN) + IPv4/IPv6 (+extension headers) + TCP,
// with knobs to break them (truncate, bad lengths, fragments).
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace helios::bpf::test {

struct TcpPacket {
  std::string src = "10.1.0.5";
  std::string dst = "10.9.9.9";
  uint16_t sport = 40000;
  uint16_t dport = 5432;
  uint8_t flags = 0x02;  // SYN
  size_t payload = 0;
  int vlan_tags = 0;
  // IPv4 knobs
  uint8_t ihl = 5;
  uint16_t frag_off = 0;  // host order, flags+offset as on the wire (0x2000 = MF)
  // IPv6 knobs: extension header protocol numbers inserted before TCP (0, 43, 60, 51, 50, 44)
  std::vector<uint8_t> ext_headers;
  uint8_t doff = 5;
  uint8_t ip_version = 0;  // 0: derived from the address family; else forced

  bool is_v6() const { return src.find(':') != std::string::npos; }

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> f;
    auto put = [&](const void* p, size_t n) {
      auto* b = static_cast<const uint8_t*>(p);
      f.insert(f.end(), b, b + n);
    };
    auto put16 = [&](uint16_t v) {
      uint16_t n = htons(v);
      put(&n, 2);
    };
    uint8_t mac[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
    put(mac, 12);
    for (int i = 0; i < vlan_tags; i++) {
      put16(i == 0 && vlan_tags > 1 ? 0x88A8 : 0x8100);
      put16(100 + i);
    }
    put16(is_v6() ? 0x86DD : 0x0800);

    std::vector<uint8_t> tcp(size_t(doff) * 4 < 20 ? 20 : size_t(doff) * 4, 0);
    uint16_t sp = htons(sport), dp = htons(dport);
    std::memcpy(&tcp[0], &sp, 2);
    std::memcpy(&tcp[2], &dp, 2);
    tcp[12] = uint8_t(doff << 4);
    tcp[13] = flags;
    tcp.resize(tcp.size() + payload, 0xab);

    if (!is_v6()) {
      uint8_t ip[60] = {};
      size_t hl = size_t(ihl) * 4 < 20 ? 20 : size_t(ihl) * 4;
      ip[0] = uint8_t(((ip_version ? ip_version : 4) << 4) | ihl);
      uint16_t tot = htons(uint16_t(hl + tcp.size()));
      std::memcpy(&ip[2], &tot, 2);
      uint16_t fo = htons(frag_off);
      std::memcpy(&ip[6], &fo, 2);
      ip[8] = 64;
      ip[9] = 6;
      inet_pton(AF_INET, src.c_str(), &ip[12]);
      inet_pton(AF_INET, dst.c_str(), &ip[16]);
      put(ip, hl);
    } else {
      uint8_t ip6[40] = {};
      ip6[0] = uint8_t((ip_version ? ip_version : 6) << 4);
      std::vector<uint8_t> ext;
      for (size_t i = 0; i < ext_headers.size(); i++) {
        uint8_t next = i + 1 < ext_headers.size() ? ext_headers[i + 1] : 6;
        uint8_t h[16] = {};
        h[0] = next;
        if (ext_headers[i] == 51) {  // AH: (hdrlen+2)*4 = 16 bytes
          h[1] = 2;
          ext.insert(ext.end(), h, h + 16);
        } else if (ext_headers[i] == 44) {  // fragment header: 8 bytes
          h[3] = 1;                         // M flag
          ext.insert(ext.end(), h, h + 8);
        } else if (ext_headers[i] == 50) {  // ESP: opaque
          ext.insert(ext.end(), h, h + 8);
        } else {  // hop-by-hop, routing, destination options: 8 bytes
          ext.insert(ext.end(), h, h + 8);
        }
      }
      uint16_t plen = htons(uint16_t(ext.size() + tcp.size()));
      std::memcpy(&ip6[4], &plen, 2);
      ip6[6] = ext_headers.empty() ? 6 : ext_headers[0];
      ip6[7] = 64;
      inet_pton(AF_INET6, src.c_str(), &ip6[8]);
      inet_pton(AF_INET6, dst.c_str(), &ip6[24]);
      put(ip6, 40);
      put(ext.data(), ext.size());
    }
    put(tcp.data(), tcp.size());
    return f;
  }
};

}  // namespace helios::bpf::test
