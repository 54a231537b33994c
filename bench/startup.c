/* startup.c: benchmark of kiln start-up: wall/CPU time to guest exit, CPU to first KVM_RUN, RSS. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 1000

struct sample {
    double wall_ms;
    double cpu_ms;
    double first_run_cpu_ms;
    double overhead_mib; /* peak RSS minus guest RAM touched */
    double rss_mib;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double tv_ms(struct timeval tv)
{
    return tv.tv_sec * 1e3 + tv.tv_usec / 1e3;
}

/* Run kiln once with --stats; parse its stats line from stderr. Returns 0 on a clean exit 0. */
static int run_once(const char *kiln, const char *guest, struct sample *s)
{
    int errpipe[2];
    if (pipe(errpipe) < 0)
        return -1;
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(errpipe[1], 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        close(errpipe[0]);
        execl(kiln, kiln, "run", "--kernel", guest, "--serial", "stdio", "--stats", "--timeout",
              "60", (char *)NULL);
        _exit(127);
    }
    close(errpipe[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(errpipe[0], buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(errpipe[0]);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        return -1;
    s->wall_ms = now_ms() - t0;
    s->cpu_ms = tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime);
    unsigned long long first_us = 0, guest_kib = 0, exits = 0;
    long rss_kib = 0;
    const char *line = strstr(buf, "stats:");
    if (!line || sscanf(line,
                        "stats: first_run_cpu_us=%llu guest_resident_kib=%llu "
                        "max_rss_kib=%ld vcpu_exits=%llu",
                        &first_us, &guest_kib, &rss_kib, &exits) != 4) {
        fprintf(stderr, "bench: no stats from kiln; its stderr was:\n%s", buf);
        return -1;
    }
    s->first_run_cpu_ms = first_us / 1e3;
    s->rss_mib = rss_kib / 1024.0;
    s->overhead_mib = ((double)rss_kib - (double)guest_kib) / 1024.0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: kiln exited with status %d; stderr:\n%s", WEXITSTATUS(status), buf);
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, const char *unit, double *v, int n, double goal)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    printf("%-34s median %8.3f %-3s min %8.3f  max %8.3f", name, median, unit, v[0], v[n - 1]);
    if (goal > 0)
        printf("  goal <= %.1f %s: %s", goal, unit, median <= goal ? "met" : "NOT met");
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s KILN GUEST_ELF [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 20;
    if (runs < 1 || runs > MAX_RUNS)
        runs = 20;
    static double wall[MAX_RUNS], cpu[MAX_RUNS], first[MAX_RUNS], over[MAX_RUNS], rss[MAX_RUNS];
    struct sample s;
    if (run_once(argv[1], argv[2], &s) < 0) /* warm-up: page cache, first exec */
        return 1;
    for (int i = 0; i < runs; i++) {
        if (run_once(argv[1], argv[2], &s) < 0)
            return 1;
        wall[i] = s.wall_ms;
        cpu[i] = s.cpu_ms;
        first[i] = s.first_run_cpu_ms;
        over[i] = s.overhead_mib;
        rss[i] = s.rss_mib;
    }
    printf("kiln start-up, %d runs of %s\n", runs, argv[2]);
    report("wall time, exec to exit", "ms", wall, runs, 0);
    report("CPU time, exec to exit", "ms", cpu, runs, 0);
    report("CPU time, exec to first KVM_RUN", "ms", first, runs, 8.0);
    report("peak RSS", "MiB", rss, runs, 0);
    report("VMM overhead (RSS - guest touched)", "MiB", over, runs, 5.0);
    return 0;
}
