#include "bpf/splice_events.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <utility>

#include "bpf/bpf_error.h"

namespace helios::bpf {

SpliceEventRing::SpliceEventRing(SpliceEventRing&& o) noexcept
    : map_(std::move(o.map_)), sink_(std::move(o.sink_)), rb_(std::exchange(o.rb_, nullptr)) {}
SpliceEventRing& SpliceEventRing::operator=(SpliceEventRing&& o) noexcept {
  if (this != &o) {
    if (rb_) ring_buffer__free(rb_);
    map_ = std::move(o.map_);
    sink_ = std::move(o.sink_);
    rb_ = std::exchange(o.rb_, nullptr);
  }
  return *this;
}
SpliceEventRing::~SpliceEventRing() {
  if (rb_) ring_buffer__free(rb_);
}

Result<SpliceEventRing> SpliceEventRing::create(uint32_t bytes, const char* name) {
  SpliceEventRing r;
  int fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, name, 0, 0, bytes, nullptr);
  if (fd < 0) return libbpf_error(-errno, std::string("splice: creating event ring ") + name);
  r.map_.reset(fd);
  r.sink_ = std::make_unique<Sink>();
  r.rb_ = ring_buffer__new(fd, &SpliceEventRing::on_sample, r.sink_.get(), nullptr);
  if (!r.rb_) return libbpf_error(-errno, "splice: mapping the event ring");
  return r;
}

int SpliceEventRing::on_sample(void* ctx, void* data, size_t size) {
  auto* sink = static_cast<Sink*>(ctx);
  if (size < sizeof(splice_event) || !sink->fn) return 0;
  splice_event ev;
  std::memcpy(&ev, data, sizeof(ev));
  (*sink->fn)(ev);
  ++sink->got;
  return 0;
}

Result<size_t> SpliceEventRing::consume(const std::function<void(const splice_event&)>& fn) {
  if (!rb_) return Error::invalid("splice: event ring not created");
  sink_->fn = &fn;
  sink_->got = 0;
  int n = ring_buffer__consume(rb_);
  sink_->fn = nullptr;
  if (n < 0) return libbpf_error(n, "splice: consuming events");
  return sink_->got;
}

std::vector<splice_event> SpliceEventRing::drain() {
  std::vector<splice_event> out;
  (void)consume([&](const splice_event& e) { out.push_back(e); });
  return out;
}

}  // namespace helios::bpf
