/* The hub's job management (issue 23): cancel, delete, delete a result, the
 * result as CSV, the algorithm list. Each runs on a hub worker thread with
 * that thread's cluster client and returns an HTTP status with the reply
 * (JSON `{"error": ...}` on failure) in *out (malloc'd). */
#ifndef DDKV_HUB_JOBS_H
#define DDKV_HUB_JOBS_H

#include "ddkv/ddkv.h"

/* what: 0 cancel, 1 delete the job with its data file and result, 2 delete
 * its result. */
int hub_job_remove(ddkv_client *c, const char *id, int what, char **out);
/* The result's per-column statistics as CSV (text/csv). */
int hub_job_result_csv(ddkv_client *c, const char *id, char **out);
/* The result as stored (JSON, for GET /api/jobs/ID/result.json): 200, or
 * 404 with a clear error when the job has none (not done, or deleted). */
int hub_job_result_json(ddkv_client *c, const char *id, char **out);
/* GET /api/algorithms: [{"name","title","description"}]. */
int hub_algorithms(char **out);
/* Whether name is an algorithm the workers know, and priority a priority
 * (NULL or empty: the default). */
bool hub_job_algorithm_ok(const char *name);
bool hub_job_priority_ok(const char *priority);

#endif
