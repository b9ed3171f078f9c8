// ListContainers: kubelet lists every container of the node about once a second, so the answer
// is assembled from entries serialized once per container state instead of building and
// serializing thousands of messages per call.
#include "lifecycle/service_impl.h"  // first: see internal.h

#include <string>
#include <vector>

#include "common/error.h"

namespace berth::lifecycle {

namespace {

v1::ContainerState ListState(const ContainerRecord& c) {
  return c.state == kRunning ? v1::CONTAINER_RUNNING
         : c.state == kExited ? v1::CONTAINER_EXITED
                              : v1::CONTAINER_CREATED;
}

bool Matches(const std::string& id, const ContainerRecord& c, v1::ContainerState state,
             const v1::ContainerFilter& f) {
  if (!f.id().empty() && id.compare(0, f.id().size(), f.id()) != 0) return false;
  if (!f.pod_sandbox_id().empty() &&
      c.sandbox_id.compare(0, f.pod_sandbox_id().size(), f.pod_sandbox_id()) != 0)
    return false;
  if (f.has_state() && f.state().state() != state) return false;
  for (const auto& [k, v] : f.label_selector()) {
    auto it = c.config.labels().find(k);
    if (it == c.config.labels().end() || it->second != v) return false;
  }
  return true;
}

// The entry of one container, serialized.
const std::string& Wire(const std::string& id, ContainerRecord& c, v1::ContainerState state) {
  if (c.wire_state == state && !c.wire.empty()) return c.wire;
  v1::Container item;
  item.set_id(id);
  item.set_pod_sandbox_id(c.sandbox_id);
  *item.mutable_metadata() = c.config.metadata();
  *item.mutable_image() = c.config.image();
  item.mutable_image()->set_image(c.image_ref.empty() ? c.config.image().image() : c.image_ref);
  item.set_image_ref(c.image_id);
  item.set_image_id(c.image_id);
  item.set_state(state);
  item.set_created_at(c.created_at);
  *item.mutable_labels() = c.config.labels();
  *item.mutable_annotations() = c.config.annotations();
  c.wire.clear();
  item.SerializeToString(&c.wire);
  c.wire_state = state;
  return c.wire;
}

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

}  // namespace

void RuntimeService::ListContainersWire(const v1::ListContainersRequest& req, std::string* out) {
  auto& I = *impl_;
  const auto& f = req.filter();
  // ListContainersResponse { repeated Container containers = 1; }: field 1, length-delimited.
  constexpr char kContainersTag = (v1::ListContainersResponse::kContainersFieldNumber << 3) | 2;
  std::lock_guard<std::mutex> lock(I.mu);
  // Two passes, so that the answer is one allocation of its final size (a growing string of
  // hundreds of KiB would be copied and page-faulted in several times).
  std::vector<const std::string*> entries;
  entries.reserve(I.containers.size());
  size_t total = out->size();
  for (const auto& [id, c] : I.containers) {
    if (c->state == kCreating) continue;
    v1::ContainerState state = ListState(*c);
    if (!Matches(id, *c, state, f)) continue;
    const std::string& entry = Wire(id, *c, state);
    entries.push_back(&entry);
    total += 1 + 10 + entry.size();
  }
  out->reserve(total);
  for (const std::string* entry : entries) {
    out->push_back(kContainersTag);
    AppendVarint(out, entry->size());
    out->append(*entry);
  }
}

void RuntimeService::ListContainers(const v1::ListContainersRequest& req, v1::ListContainersResponse* resp) {
  std::string wire;
  ListContainersWire(req, &wire);
  if (!resp->ParseFromString(wire)) throw Error(Code::kInternal, "ListContainers: failed to decode the container list");
}

}  // namespace berth::lifecycle
