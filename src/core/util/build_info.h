/* This build's version: the release (CMake's PROJECT_VERSION) and the git revision it was built from. */
#ifndef DDKV_UTIL_BUILD_INFO_H
#define DDKV_UTIL_BUILD_INFO_H

/* "X.Y.Z"; static storage. */
const char *version_string(void);
/* The first 12 hex digits of the commit, "-dirty" appended when the tree
 * differed from it, or "unknown" (built outside a git checkout); static storage. */
const char *version_git_rev(void);

#endif
