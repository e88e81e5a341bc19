package transport

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecows/ecows/frame"
	"github.com/ecows/ecows/internal/option"
)

// config is what a Conn takes from its Options, with the defaults filled in. Connections made
// from equal Options share one: a server's connections mostly do, so each pays for a pointer
// rather than for the values.
type config struct {
	limits
	onPing, onPong func(*Conn, []byte) error
}

// limits is the comparable part of config, the key under which configs are shared.
type limits struct {
	maxPayload, maxMessage                 int64
	writeTimeout, closeTimeout, flushDelay time.Duration
	rsize, wsize                           int
}

// maxShared bounds the number of shared configs, in case a program makes Options by the
// thousand: past it, each Conn gets a config of its own.
const maxShared = 64

var (
	sharedConfigs sync.Map // limits → *config, for Options without handlers
	nShared       atomic.Int32
)

// configFor returns the config for opts, shared with earlier Conns when it can be.
func configFor(opts *Options) *config {
	l := limits{
		maxPayload:   option.Or(opts.MaxPayloadLen, DefaultMaxPayloadLen),
		writeTimeout: option.Or(opts.WriteTimeout, DefaultWriteTimeout),
		closeTimeout: option.Or(opts.CloseTimeout, DefaultCloseTimeout),
		flushDelay:   option.Or(opts.FlushDelay, DefaultFlushDelay),
		// A control frame is read whole into the buffer, and written whole into the batch, so
		// each must hold the largest one.
		rsize: max(option.Or(opts.ReadBufferSize, DefaultReadBufferSize), frame.MaxHeaderLen+frame.MaxControlPayload),
		wsize: max(option.Or(opts.WriteBufferSize, DefaultWriteBufferSize), frame.MaxHeaderLen+frame.MaxControlPayload),
	}
	l.maxMessage = option.Or(opts.MaxMessageLen, max(DefaultMaxMessageLen, l.maxPayload))
	if opts.PingHandler != nil || opts.PongHandler != nil {
		// Functions cannot be compared, so a config with handlers is never shared.
		return &config{limits: l, onPing: opts.PingHandler, onPong: opts.PongHandler}
	}
	if cf, ok := sharedConfigs.Load(l); ok {
		return cf.(*config)
	}
	cf := &config{limits: l}
	if nShared.Load() >= maxShared {
		return cf
	}
	if got, loaded := sharedConfigs.LoadOrStore(l, cf); loaded {
		return got.(*config)
	}
	nShared.Add(1)
	return cf
}
