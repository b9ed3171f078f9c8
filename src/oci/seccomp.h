// Seccomp profiles for OCI specs: berth's built-in RuntimeDefault profile (an allowlist modelled
// on containerd's default profile, SCMP_ACT_ERRNO for everything else) and Localhost profiles
// loaded from JSON files.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::oci {

// The RuntimeDefault profile (runtime-spec linux.seccomp). Syscalls that need a capability
// (mount needs CAP_SYS_ADMIN, ptrace CAP_SYS_PTRACE, ...) are allowed only when `bounding_caps`
// ("CAP_..." names) holds that capability; without CAP_SYS_ADMIN, clone may not create
// namespaces and clone3 fails with ENOSYS (so that libcs fall back to clone).
nlohmann::json DefaultSeccompProfile(const std::vector<std::string>& bounding_caps);

// Reads a Localhost profile: a runtime-spec linux.seccomp object (defaultAction required).
// Throws Error naming the file (kNotFound when missing, kInvalidArgument when malformed).
nlohmann::json LoadSeccompProfile(const std::string& path);

}  // namespace berth::oci
