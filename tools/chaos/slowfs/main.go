// slowfs mounts a directory over another as a FUSE passthrough file system
// (go-fuse's loopback) that can make fsync, fdatasync and, optionally, writes
// slow at run time: the chaos tool's slow-disk fault (tools/chaos/slowdisk.py).
//
//	slowfs -backing DIR -mount DIR [-fsync-delay 300ms] [-write-delay 0]
//
// It starts fast. SIGUSR1 slows fsyncs (and directory fsyncs), SIGHUP slows
// fsyncs and writes, SIGUSR2 makes everything fast again; SIGTERM or SIGINT
// unmounts and exits. "mounted" on stdout says the mount is
// ready; each switch is answered by a line on stdout (and logged on stderr).
//
// A delay is a sleep before the operation is passed down, so a slow fsync
// holds only its caller, as a slow disk does, and the data written is the
// backing file system's own: the mount adds no durability of its own and
// loses none.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// What is slow now.
const (
	fast int32 = iota
	slowFsync
	slowFsyncAndWrite
)

// delays is what the mount adds to each operation, by mode.
type delays struct {
	mode  atomic.Int32
	fsync time.Duration
	write time.Duration
}

func (d *delays) beforeFsync() {
	if d.mode.Load() != fast {
		time.Sleep(d.fsync)
	}
}

func (d *delays) beforeWrite() {
	if d.mode.Load() == slowFsyncAndWrite {
		time.Sleep(d.write)
	}
}

// slowNode is a loopback node whose files and directories sleep before
// fsync (and, for files, before write) while the mode says so.
type slowNode struct {
	*fs.LoopbackNode
	delays *delays
}

var _ = (fs.NodeWrapChilder)((*slowNode)(nil))

// WrapChild makes every node the loopback creates under this one slow too.
func (n *slowNode) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &slowNode{LoopbackNode: ops.(*fs.LoopbackNode), delays: n.delays}
}

var _ = (fs.NodeOpener)((*slowNode)(nil))
var _ = (fs.NodeCreater)((*slowNode)(nil))
var _ = (fs.NodeOpendirHandler)((*slowNode)(nil))
var _ = (fs.NodeFsyncer)((*slowNode)(nil))

// The backing file is opened without O_DIRECT: the kernel's FUSE side still
// honours the caller's O_DIRECT (its writes come straight to this daemon, not
// through the mount's page cache), but the buffers they arrive in here are not
// block-aligned, so passing O_DIRECT down would fail every write with EINVAL.
func withoutDirectIO(flags uint32) uint32 {
	return flags &^ syscall.O_DIRECT
}

func (n *slowNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, withoutDirectIO(flags))
	if errno != 0 {
		return nil, 0, errno
	}
	return &slowFile{LoopbackFile: fh.(*fs.LoopbackFile), delays: n.delays}, fuseFlags, 0
}

func (n *slowNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, withoutDirectIO(flags), mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return inode, &slowFile{LoopbackFile: fh.(*fs.LoopbackFile), delays: n.delays}, fuseFlags, 0
}

func (n *slowNode) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &slowDir{FileHandle: fh, delays: n.delays}, fuseFlags, 0
}

// Fsync is asked of the node before its file handle (go-fuse's bridge), so a
// file's fsync and fdatasync are slowed here whatever handle they come through.
func (n *slowNode) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	n.delays.beforeFsync()
	if syncer, ok := f.(fs.FileFsyncer); ok {
		return syncer.Fsync(ctx, flags)
	}
	return syscall.ENOTSUP
}

// slowFile is a loopback file that sleeps before each write while writes
// are slow, and never hands the kernel its backing file for passthrough (which
// would let writes bypass this daemon, and so the delay).
type slowFile struct {
	*fs.LoopbackFile
	delays *delays
}

func (f *slowFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.delays.beforeWrite()
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *slowFile) PassthroughFd() (int, bool) {
	return -1, false
}

// slowDir is a loopback directory handle whose fsync (a new segment's entry,
// a new partition's directory) sleeps while fsyncs are slow.
type slowDir struct {
	fs.FileHandle
	delays *delays
}

var _ = (fs.FileReaddirenter)((*slowDir)(nil))
var _ = (fs.FileSeekdirer)((*slowDir)(nil))
var _ = (fs.FileReleasedirer)((*slowDir)(nil))
var _ = (fs.FileFsyncdirer)((*slowDir)(nil))

func (d *slowDir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.FileHandle.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *slowDir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return d.FileHandle.(fs.FileSeekdirer).Seekdir(ctx, off)
}

func (d *slowDir) Releasedir(ctx context.Context, flags uint32) {
	d.FileHandle.(fs.FileReleasedirer).Releasedir(ctx, flags)
}

func (d *slowDir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	d.delays.beforeFsync()
	return d.FileHandle.(fs.FileFsyncdirer).Fsyncdir(ctx, flags)
}

// switchTo sets the mode, then says so on stdout: whoever signalled can wait
// for the line to know that the next operation sees the new mode.
func switchTo(d *delays, mode int32, what string) {
	d.mode.Store(mode)
	log.Print(what)
	fmt.Println(what)
}

func main() {
	backing := flag.String("backing", "", "the directory whose files the mount shows (required)")
	mountPoint := flag.String("mount", "", "where to mount it (required; an empty directory)")
	fsyncDelay := flag.Duration("fsync-delay", 300*time.Millisecond, "added to every fsync and fdatasync while slow (SIGUSR1, SIGHUP)")
	writeDelay := flag.Duration("write-delay", 100*time.Millisecond, "added to every write while writes are slow (SIGHUP)")
	flag.Parse()
	if *backing == "" || *mountPoint == "" {
		flag.Usage()
		os.Exit(2)
	}
	log.SetPrefix("slowfs: ")

	loopback, err := fs.NewLoopbackRoot(*backing)
	if err != nil {
		log.Fatalf("backing directory %s: %v", *backing, err)
	}
	d := &delays{fsync: *fsyncDelay, write: *writeDelay}
	root := &slowNode{LoopbackNode: loopback.(*fs.LoopbackNode), delays: d}

	server, err := fs.Mount(*mountPoint, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			// As root, mount(2) directly: no fusermount helper is needed.
			DirectMount: true,
			FsName:      *backing,
			Name:        "slowfs",
		},
	})
	if err != nil {
		log.Fatalf("mount %s on %s: %v", *backing, *mountPoint, err)
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range signals {
			switch s {
			case syscall.SIGUSR1:
				switchTo(d, slowFsync, fmt.Sprintf("slow: fsync +%v", d.fsync))
			case syscall.SIGHUP:
				switchTo(d, slowFsyncAndWrite, fmt.Sprintf("slow: fsync +%v, write +%v", d.fsync, d.write))
			case syscall.SIGUSR2:
				switchTo(d, fast, "fast")
			default:
				d.mode.Store(fast)
				if err := server.Unmount(); err != nil {
					log.Printf("unmount %s: %v", *mountPoint, err)
				}
			}
		}
	}()
	fmt.Println("mounted")
	server.Wait()
}
