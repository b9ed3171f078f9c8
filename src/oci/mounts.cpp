#include "oci/mounts.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace berth::oci {

namespace {

[[noreturn]] void Invalid(const VolumeMount& v, const std::string& cause,
                          Code code = Code::kInvalidArgument) {
  throw Error(code, "mount \"" + v.container_path + "\": " + cause);
}

}  // namespace

const char* PropagationName(Propagation p) {
  switch (p) {
    case Propagation::kPrivate: return "PROPAGATION_PRIVATE";
    case Propagation::kHostToContainer: return "PROPAGATION_HOST_TO_CONTAINER";
    case Propagation::kBidirectional: return "PROPAGATION_BIDIRECTIONAL";
  }
  return "PROPAGATION_UNKNOWN";
}

MountPlan PlanVolumeMount(const VolumeMount& v, const HandlerRRO& rro) {
  if (v.container_path.empty()) Invalid(v, "container path is empty");
  if (v.container_path[0] != '/') Invalid(v, "container path must be absolute");
  if (v.host_path.empty()) Invalid(v, "host path is empty");
  if (v.host_path[0] != '/') Invalid(v, "host path \"" + v.host_path + "\" must be absolute");
  if (v.host_path.size() >= PATH_MAX) Invalid(v, "host path is too long");

  MountPlan plan;
  plan.selinux_relabel = v.selinux_relabel;
  char real[PATH_MAX];
  if (!::realpath(v.host_path.c_str(), real)) {
    int e = errno;
    Invalid(v, "host path \"" + v.host_path + "\": " + std::strerror(e));
  }
  plan.resolved_host_path = real;
  struct stat st{};
  if (::stat(real, &st) != 0) {
    int e = errno;
    Invalid(v, "host path \"" + v.host_path + "\": " + std::strerror(e));
  }
  const bool is_dir = S_ISDIR(st.st_mode);

  Mount& m = plan.mount;
  m.destination = v.container_path;
  m.type = "bind";
  m.source = real;
  m.options = {"rbind"};
  switch (v.propagation) {
    case Propagation::kPrivate: m.options.push_back("rprivate"); break;
    case Propagation::kHostToContainer:
      m.options.push_back("rslave");
      plan.needs_slave_rootfs = true;
      break;
    case Propagation::kBidirectional:
      m.options.push_back("rshared");
      plan.needs_shared_rootfs = true;
      break;
    default: Invalid(v, "unknown mount propagation " + std::to_string(static_cast<int>(v.propagation)));
  }

  if (v.recursive_read_only) {
    if (!v.readonly) Invalid(v, "recursive read-only mount conflicts with RW mount");
    if (v.propagation != Propagation::kPrivate)
      Invalid(v, std::string("recursive read-only mount needs private propagation, got ") +
                     PropagationName(v.propagation));
    if (!rro.supported_for_kep)
      Invalid(v,
              "RROUnsupported: the runtime handler does not support recursive read-only mounts "
              "(host path \"" + v.host_path + "\")",
              Code::kFailedPrecondition);
    if (rro.kep_via_fallback) {
      m.options.push_back("ro");
      plan.stage_read_only = true;
    } else {
      m.options.push_back("rro");
    }
  } else if (v.readonly) {
    if (rro.enabled && is_dir) {
      if (rro.via_fallback) {
        m.options.push_back("ro");
        plan.stage_read_only = true;
      } else {
        m.options.push_back("rro");
      }
    } else {
      m.options.push_back("ro");
    }
  } else {
    m.options.push_back("rw");
  }
  return plan;
}

nlohmann::json MountToJson(const Mount& m) {
  return {{"destination", m.destination}, {"type", m.type}, {"source", m.source}, {"options", m.options}};
}

}  // namespace berth::oci
