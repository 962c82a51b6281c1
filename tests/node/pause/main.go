// Command pause holds a pod's namespaces, as the upstream pause image does: it sleeps
// until SIGINT or SIGTERM and reaps the zombies of a shared PID namespace. Built by
// tests/node/runtime.py into the node's sandbox image, because no registry serves
// registry.k8s.io/pause here (docs/images.md).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
