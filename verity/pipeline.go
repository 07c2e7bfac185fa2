package verity

import "sync"

// ordered runs work(worker, i) for i in [0, n) on a pool of workers and
// hands the results to consume in index order. At most 2*workers results
// are in flight, so memory stays bounded. Each worker index is used by one
// goroutine at a time, so work may use per-worker buffers. The first error
// (from work, in index order, or from consume) stops the run.
func ordered[T any](n, workers int, work func(worker, i int) (T, error), consume func(i int, r T) error) error {
	if workers < 1 {
		workers = 1
	}
	workers = min(workers, n)
	type result struct {
		i    int
		v    T
		err  error
		done chan struct{}
	}
	// order carries the jobs in index order to the consumer; its capacity
	// bounds the results in flight.
	order := make(chan *result, 2*workers)
	jobs := make(chan *result)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := range jobs {
				r.v, r.err = work(w, r.i)
				close(r.done)
			}
		}(w)
	}
	go func() {
		defer close(jobs)
		defer close(order)
		for i := 0; i < n; i++ {
			r := &result{i: i, done: make(chan struct{})}
			select {
			case order <- r:
			case <-quit:
				return
			}
			select {
			case jobs <- r:
			case <-quit:
				return
			}
		}
	}()
	var err error
	for r := range order {
		<-r.done
		err = r.err
		if err == nil {
			err = consume(r.i, r.v)
		}
		if err != nil {
			break
		}
	}
	close(quit)
	wg.Wait()
	return err
}
