#pragma once
// Backend "chaos-vpd": the DCGAN + virtual planet domain + chaotic map cipher, hardened for DICOM.
#include "codecs/backend_table.h"

namespace pacsgw::codecs {
// Its entry in the backend table (codecs/backend_table.h).
const BackendEntry& chaosVpdBackend();
}  // namespace pacsgw::codecs
