// Package procgroup holds the process-tree mechanics behind hard timeouts,
// one file per operating system:
//
//	                      Linux                         macOS                      Windows
//	the tree              a process group (Setpgid)     a process group (Setpgid)  a Job Object
//	kill all of it        kill(-pgid, sig)              kill(-pgid, sig)           TerminateJobObject
//	"all of it is gone"   kill(-pgid, 0) fails ESRCH    kill(-pgid, 0) fails ESRCH the job has no active process
//	orphans go to         this process (subreaper)      launchd, which reaps them  - (the job holds them)
//	resident memory       /proc/<pid>/statm             not available              not available
//
// On Linux and macOS it signals every process of a group, reaps the
// members of one group without touching other children, waits until
// nothing of a group is left (zombies included) and lists a group's
// members; on Linux it also makes this process the reaper of the orphans
// its children leave behind and reads a process's resident memory. On
// Windows it creates and kills Job Objects that hold a process and
// everything it starts, and that die with this process
// (JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE). The subprocess executor uses it;
// anything that kills a process tree for real can. What an OS lacks is an
// error wrapping errors.ErrUnsupported, never a silent no-op.
//
// Two facts shape the Unix side. A process group outlives its leader:
// grandchildren keep the group alive after the worker dies, so "dead"
// means "kill(-pgid, 0) fails with ESRCH", not "Wait returned". And orphans
// are reparented to the nearest child subreaper, or to PID 1 (launchd on
// macOS), which in some Linux containers never reaps them: a killed
// grandchild then stays a zombie in the group forever, unless this process
// is a subreaper and reaps it.
package procgroup
