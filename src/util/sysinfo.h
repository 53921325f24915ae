// util/sysinfo.h — who and where we run: recorded in key files, locks and snapshots.
#pragma once

#include <string>

namespace haven {

std::string hostname();
// The login name of the effective user, or its numeric uid if it has no name.
std::string username();

}  // namespace haven
