module fti.dev/testbed/pause

go 1.22
