#include "cmd/berthd/plugins.h"

#include "cri/cri.h"
#include "criplugins/criplugins.h"
#include "plugin/services.h"

namespace berth::berthd {

std::vector<daemon::Registrar> Plugins() {
  return {
      &plugin::RegisterBuiltinPlugins,
      [](plugin::Registry& r) { criplugins::RegisterCRIPlugins(r); },
      &cri::RegisterCRIServerPlugin,
      // Add one line per library that provides plugins, e.g. &cri::RegisterCRIGrpcPlugins.
  };
}

}  // namespace berth::berthd
