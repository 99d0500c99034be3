#ifndef FEEDBACKMESH_CZSTD_SHIM_H
#define FEEDBACKMESH_CZSTD_SHIM_H
#include <zstd.h>
#include <zstd_errors.h>
#endif
