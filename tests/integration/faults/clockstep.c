/* Step one process's wall clock, as NTP stepping the host clock would: LD_PRELOAD this library
 * and write an offset in seconds (e.g. "3600" or "-3600") to the file named by
 * $KMC_CLOCK_OFFSET_FILE. CLOCK_REALTIME (clock_gettime, gettimeofday, time) moves by the
 * offset; CLOCK_MONOTONIC and the rest are untouched, as on a real host. (libfaketime 0.9.10,
 * Debian 12's, breaks Python's sleep when told to leave the monotonic clock alone.)
 *
 * The file is read again at most every 50 ms of monotonic time.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void) {
    static clock_gettime_fn real = NULL;
    if (real == NULL) real = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real;
}

static long long offset_ns(void) {
    static long long offset = 0;
    static long long read_at = -1000000000LL;
    struct timespec mono;
    real_clock_gettime()(CLOCK_MONOTONIC, &mono);
    long long now = mono.tv_sec * 1000000000LL + mono.tv_nsec;
    if (now - read_at < 50000000LL) return offset;
    read_at = now;
    const char *path = getenv("KMC_CLOCK_OFFSET_FILE");
    if (path == NULL) return offset;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return offset;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
        buf[n] = 0;
        offset = strtoll(buf, NULL, 10) * 1000000000LL;
    }
    return offset;
}

static void shift(struct timespec *ts) {
    long long t = ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
    ts->tv_sec = t / 1000000000LL;
    ts->tv_nsec = t % 1000000000LL;
    if (ts->tv_nsec < 0) {
        ts->tv_nsec += 1000000000LL;
        ts->tv_sec -= 1;
    }
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    int r = real_clock_gettime()(clock, ts);
    if (r == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shift(ts);
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    clock_gettime(CLOCK_REALTIME, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL) *out = ts.tv_sec;
    return ts.tv_sec;
}
