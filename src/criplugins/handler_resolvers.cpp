// The built-in runtime handler resolvers of io.containerd.cri.v1.runtime. A feature that must be
// resolved per handler at init adds its step here (one entry, implemented in its own library).
#include "criplugins/criplugins.h"

namespace berth::criplugins {

HandlerResolver LaunchHandlerResolver();  // launch_resolver.cpp
HandlerResolver RROHandlerResolver();     // rro_resolver.cpp
HandlerResolver UsernsHandlerResolver();  // userns_resolver.cpp

std::vector<HandlerResolver> BuiltinHandlerResolvers() {
  std::vector<HandlerResolver> resolvers;
  // Add resolvers here, e.g. resolvers.push_back({"rro", &runtime::ResolveRecursiveReadOnly});
  resolvers.push_back(LaunchHandlerResolver());
  resolvers.push_back(RROHandlerResolver());
  resolvers.push_back(UsernsHandlerResolver());
  return resolvers;
}

}  // namespace berth::criplugins
