# Splits a perf profile into where a cache hit's CPU goes.
#   perf script -i FILE.perf.data -F ip,sym | awk -f perf-categories.awk
# Each sample (its call stack, frames one a line, samples separated by blank
# lines) goes to the first category below that one of its frames matches, so
# a syscall's kernel time is counted under the syscall and not under the Go
# or nginx function that made it. Kernel frames need `perf record -g`; Go
# frames come from Go's frame pointers; Debian's nginx and varnishd have no
# frame pointers, so their user-space time shows only as leaf functions.
function classify(st) {
  if (st ~ /\|(syscall\.write|net\.\(\*netFD\)\.Write|internal\/poll\.SendFile|syscall\.Sendfile|__x64_sys_writev|__x64_sys_sendfile64|__x64_sys_write|do_writev|do_sendfile|ksys_write)\|/)
    return "socket write/sendfile, incl. the loopback TCP delivery to the client it runs"
  if (st ~ /\|[^|]*internal\/edge\.\(\*objectReader\)[^|]*\|/ || st ~ /\|hash\/crc32[^|]*\|/)
    return "stored-data check (edge objectReader: read + CRC-32C)"
  if (st ~ /\|(os\.\(\*File\)\.Read|os\.\(\*File\)\.ReadAt|os\.\(\*File\)\.pread|__x64_sys_pread64|__x64_sys_preadv)\|/)
    return "file read into a user buffer"
  if (st ~ /\|(net\.\(\*netFD\)\.Read|__x64_sys_recvfrom|__x64_sys_read|__sys_recvfrom|ksys_read)\|/)
    return "socket read of requests"
  if (st ~ /\|([^|]*internal\/edge\.\(\*cache\)\.open[^|]*|os\.OpenFile|os\.\(\*File\)\.(Close|Stat|Seek|seek)|__x64_sys_(openat|close|newfstat|lseek|fcntl)|do_sys_openat2|vfs_fstat|ksys_lseek)\|/)
    return "open/fstat/seek/close of the cached file"
  if (st ~ /\|(runtime\.netpoll|runtime\.findRunnable|runtime\.schedule|__x64_sys_epoll_wait|__x64_sys_epoll_ctl|do_epoll_wait|do_epoll_ctl)\|/)
    return "event loop (netpoll/epoll, scheduler)"
  if (st ~ /\|(runtime\.gcBgMarkWorker|runtime\.gcAssistAlloc|runtime\.bgsweep|runtime\.bgscavenge|runtime\.gcStart)\|/)
    return "garbage collection"
  if (st ~ /\|[^|]*(prometheus|log\/slog)[^|]*\|/)
    return "metrics and logging"
  if (st ~ /\|(runtime\.mallocgc|runtime\.newobject|runtime\.makeslice|runtime\.growslice|runtime\.makemap[^|]*)\|/)
    return "allocation"
  if (st ~ /\|net\/http\.\(\*conn\)\.readRequest\|/)
    return "HTTP request parsing"
  if (st ~ /\|net\/http\.(serveContent|ServeContent)\|/)
    return "net/http ServeContent (validators, Last-Modified, ranges)"
  if (st ~ /\|(net\/http\.\(\*chunkWriter\)\.writeHeader|net\/http\.\(\*response\)\.(WriteHeader|finishRequest)|net\/http\.Header\.[^|]*)\|/)
    return "HTTP response header writing"
  if (st ~ /\|[^|]*internal\/edge\.[^|]*\|/)
    return "edge handler (lookup, header copy, Age)"
  if (st ~ /\|ngx_[^|]*\|/)
    return "nginx user space"
  if (st ~ /\|runtime\.[^|]*\|/)
    return "Go runtime, other"
  return "other"
}
function flush() {
  if (st != "|") { count[classify(st)]++; total++; if (leafk) kernel++ }
  st = "|"
}
BEGIN { st = "|" }
/^[[:space:]]*$/ { flush(); next }
{
  if (st == "|") leafk = ($1 ~ /^ffffffff/)   # the leaf frame: kernel or user space
  sub(/^[[:space:]]*[0-9a-f]+[[:space:]]+/, "")
  sub(/\+0x[0-9a-f]+$/, "")
  sub(/[[:space:]]+\(.*\)$/, "")
  st = st $0 "|"
}
END {
  flush()
  for (k in count) printf "%6.1f%%  %s\n", 100 * count[k] / total, k | "sort -rn"
  close("sort -rn")
  if (total) printf "%6.1f%%  (of all samples: in the kernel, the rest in user space)\n", 100 * kernel / total
  printf "%7d  samples\n", total
}
