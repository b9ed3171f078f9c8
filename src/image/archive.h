// Image archive import (OCI image layout tarballs, `docker save` archives); declared in unpack.h.
#pragma once

#include "image/unpack.h"
