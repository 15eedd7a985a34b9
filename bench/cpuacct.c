/* CPU time of the nodes, of Redis and of the bench itself over a measured interval (/proc). */
#include "cpuacct.h"

#include "procinfo.h"

void sb_cpuacct_start(sb_cpuacct_t *a)
{
    for (int i = 0; i < a->nnodes; i++)
        a->node_start[i] = sb_proc_cpu_seconds(a->node[i]);
    a->redis_start = a->redis > 0 ? sb_proc_cpu_seconds(a->redis) : -1;
    a->self_start = sb_proc_cpu_seconds(0);
    a->nodes_s = a->redis_s = a->self_s = -1;
    a->node_lost = 0;
}

void sb_cpuacct_stop(sb_cpuacct_t *a, double wall_s)
{
    a->wall_s = wall_s;
    if (a->nnodes > 0) {
        a->nodes_s = 0;
        for (int i = 0; i < a->nnodes; i++) {
            double now = sb_proc_cpu_seconds(a->node[i]);
            if (now < 0 || a->node_start[i] < 0) {
                a->node_lost = 1;
                continue;
            }
            a->nodes_s += now - a->node_start[i];
        }
    }
    if (a->redis > 0 && a->redis_start >= 0) {
        double now = sb_proc_cpu_seconds(a->redis);
        if (now >= 0)
            a->redis_s = now - a->redis_start;
        else
            a->node_lost = 1;
    }
    double self = sb_proc_cpu_seconds(0);
    if (self >= 0 && a->self_start >= 0)
        a->self_s = self - a->self_start;
}
