{
  "targets": [
    {
      "target_name": "fastpath",
      "sources": ["fastpath-addon.c", "telemetry-addon.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}
