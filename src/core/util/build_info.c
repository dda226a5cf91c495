/* The version strings: DDKV_VERSION_STRING from CMake and DDKV_GIT_REV from the generated ddkv_git_rev.h. */
#include "util/build_info.h"

#include "ddkv_git_rev.h"

#ifndef DDKV_VERSION_STRING
#define DDKV_VERSION_STRING "dev"
#endif

const char *version_string(void)
{
    return DDKV_VERSION_STRING;
}

const char *version_git_rev(void)
{
    return DDKV_GIT_REV;
}
