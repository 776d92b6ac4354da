package issuer

import "go.uber.org/zap"

// Logger returns the issuer's logger.
func (i *Issuer) Logger() *zap.Logger { return i.logger }
