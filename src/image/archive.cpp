#include "image/unpack.h"
