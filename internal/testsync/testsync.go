// Package testsync runs the concurrent bursts of tokengate's race tests:
// many goroutines released at the same moment against one shared thing (a
// lock, a family, a throttle, a cache), so that they really race for it.
package testsync

import "sync"

// AtOnce runs f(0) … f(n-1), each on its own goroutine, releases them all
// at the same moment and returns when every one has returned. f may call
// t.Error but not t.Fatal (it does not run on the test's goroutine).
func AtOnce(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}
