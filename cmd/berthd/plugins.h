// The plugins berthd registers, in registration order.
#pragma once

#include <vector>

#include "daemon/daemon.h"

namespace berth::berthd {

std::vector<daemon::Registrar> Plugins();

}  // namespace berth::berthd
