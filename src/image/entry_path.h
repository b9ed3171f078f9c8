// Entry-name cleaning shared by layer extraction and archive import.
#pragma once

#include <string>
#include <vector>

namespace berth::image {

// Splits an entry name into clean components: a leading '/' and "." or empty components are
// dropped, ".." removes the previous component. False when ".." would climb above the root.
bool CleanEntryPath(const std::string& name, std::vector<std::string>& out);

}  // namespace berth::image
