{
  "targets": [
    {
      "target_name": "malloc_trim",
      "sources": ["malloc-trim.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    },
    {
      "target_name": "gc_marking",
      "sources": ["gc-marking.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    },
    {
      "target_name": "eval_deadline",
      "sources": ["eval-deadline.cc"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
