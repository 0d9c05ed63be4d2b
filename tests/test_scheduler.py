"""The scheduler's rules, on a scripted transport: order, replay of lost tasks, limits, stopping, queues."""
import collections

import pytest

from fastpg.scheduler import Done, Failed, Lost, Ready, Scheduler, StopRequested, WorkerError, WorkerLost


class ScriptedTransport:
    """Workers that finish each task with task * 10, in the order the script says.

    finish_order: a list of tasks; a worker holding one finishes it only when
    every task before it in the list has finished, so results come back out
    of order. lose: task -> how many of its tries die. fail: tasks whose
    worker raises. not_ready: workers report Ready on their first wait. A
    worker plays the tasks it holds one after another, reporting at most one
    per wait; most_held is the most any worker held at once.
    """

    def __init__(self, finish_order=None, lose=None, fail=(), starts_ready=True, send_fails=0):
        self.finish_order = list(finish_order or [])
        self.lose = dict(lose or {})
        self.fail = set(fail)
        self.starts_ready = starts_ready
        self.send_fails = send_fails
        self.started = 0
        self.stopped = []
        self.holding = collections.defaultdict(collections.deque)  # handle -> its tasks, the one it plays first
        self.most_held = 0
        self.sent = []  # every task sent, in order
        self.announced = set()
        self.begins = 0
        self.closed = False

    def start(self):
        self.started += 1
        return f"w{self.started}"

    def begin(self):
        self.begins += 1

    def send(self, handle, task):
        if self.send_fails:
            self.send_fails -= 1
            raise WorkerLost("pipe closed")
        self.holding[handle].append(task)
        self.sent.append(task)
        self.most_held = max(self.most_held, len(self.holding[handle]))

    def wait(self, handles, timeout):
        events = []
        for handle in handles:
            if not self.starts_ready and handle not in self.announced:
                self.announced.add(handle)
                events.append((handle, Ready()))
                continue
            if not self.holding[handle]:
                continue
            task = self.holding[handle][0]
            if self.finish_order and self.finish_order[0] != task and task in self.finish_order:
                continue  # not its turn yet
            self.holding[handle].popleft()
            if task in self.finish_order:
                self.finish_order.remove(task)
            if self.lose.get(task, 0):
                self.lose[task] -= 1
                events.append((handle, Lost("killed")))
            elif task in self.fail:
                events.append((handle, Failed("Traceback: boom")))
            else:
                events.append((handle, Done(task * 10)))
        return events

    def name(self, handle):
        return handle

    def stop(self, handles):
        self.stopped.extend(handles)
        for handle in handles:
            self.holding.pop(handle, None)  # its queued tasks die with it

    def close(self):
        self.closed = True


def test_results_come_back_in_task_order_whatever_order_they_finish_in():
    transport = ScriptedTransport(finish_order=[3, 1, 2, 0])
    with Scheduler(transport, 4) as scheduler:
        assert list(scheduler.run([0, 1, 2, 3])) == [0, 10, 20, 30]
    assert transport.begins == 1
    assert transport.closed and sorted(transport.stopped) == ["w1", "w2", "w3", "w4"]


def test_a_lost_task_is_replayed_on_a_new_worker_with_a_warning():
    warnings = []
    transport = ScriptedTransport(lose={1: 2})
    scheduler = Scheduler(transport, 2, on_warning=warnings.append, task_name="game")
    assert list(scheduler.run(range(4))) == [0, 10, 20, 30]
    assert scheduler.replays == 2
    assert transport.started == 4  # two replacements
    assert len(warnings) == 2 and all("while playing game 1" in w and "replaying it" in w for w in warnings)
    assert scheduler.n_workers == 2
    scheduler.close()


def test_a_task_that_keeps_killing_its_worker_is_an_error_after_three_tries():
    scheduler = Scheduler(ScriptedTransport(lose={0: 3}), 1, on_warning=lambda text: None)
    with pytest.raises(WorkerError, match="episode 0 killed its worker 3 times"):
        list(scheduler.run([0]))
    scheduler.close()


def test_a_worker_that_raises_is_an_error_not_a_replay():
    scheduler = Scheduler(ScriptedTransport(fail={2}), 2)
    with pytest.raises(WorkerError, match="failed while playing episode 2:\nTraceback: boom"):
        list(scheduler.run(range(3)))
    assert scheduler.replays == 0
    scheduler.close()


def test_a_worker_dead_before_its_task_is_sent_is_replaced():
    warnings = []
    transport = ScriptedTransport(send_fails=1)
    with Scheduler(transport, 1, on_warning=warnings.append) as scheduler:
        assert list(scheduler.run([5])) == [50]
    assert transport.started == 2 and len(warnings) == 1 and "pipe closed" in warnings[0]


def test_workers_that_start_late_get_tasks_once_ready():
    transport = ScriptedTransport(starts_ready=False)
    with Scheduler(transport, 2) as scheduler:
        assert list(scheduler.run(range(5))) == [0, 10, 20, 30, 40]


def test_stop_abandons_the_run_and_its_late_results_are_dropped():
    transport = ScriptedTransport(finish_order=[1, 0])
    scheduler = Scheduler(transport, 2)
    with pytest.raises(StopRequested):
        list(scheduler.run([0, 1], should_stop=lambda: True))
    # Tasks 0 and 1 are still out; their results must not leak into the next run.
    assert list(scheduler.run([7])) == [70]
    scheduler.close()


def test_bad_worker_count():
    with pytest.raises(ValueError, match="n_workers must be at least 1"):
        Scheduler(ScriptedTransport(), 0)


def test_a_queue_of_two_keeps_task_order_and_fills_idle_workers_first():
    transport = ScriptedTransport(finish_order=[1, 3, 0, 2, 4, 5])
    with Scheduler(transport, 2, depth=2) as scheduler:
        assert list(scheduler.run(range(6))) == [0, 10, 20, 30, 40, 50]
        assert transport.most_held == 2
        transport.most_held = 0
        assert list(scheduler.run([6, 7])) == [60, 70]
        assert transport.most_held == 1  # two tasks, two idle workers: one each


def test_a_lost_worker_gives_back_its_queued_tasks_in_order_without_counting_them_as_tries():
    # Task 0 kills its worker twice while task 1 waits behind it; then task 1 kills two workers itself.
    # Counting its waits as tries would make task 1 a third-time killer and stop the run.
    warnings = []
    transport = ScriptedTransport(lose={0: 2, 1: 2})
    with Scheduler(transport, 1, on_warning=warnings.append, depth=2) as scheduler:
        assert list(scheduler.run([0, 1, 2])) == [0, 10, 20]
        assert scheduler.replays == 4
    assert [w.split("while playing ")[1].split(";")[0] for w in warnings] == ["episode 0"] * 2 + ["episode 1"] * 2


def test_a_lost_worker_whose_first_task_was_abandoned_gives_back_the_current_ones():
    warnings = []
    transport = ScriptedTransport(finish_order=[1, 0], lose={0: 1})
    scheduler = Scheduler(transport, 1, on_warning=warnings.append, depth=2)

    def stop():  # task 0 is held back, then free to go once the run is abandoned
        transport.finish_order.clear()
        return True

    with pytest.raises(StopRequested):
        list(scheduler.run([0], should_stop=stop))
    # Task 7 waits behind the abandoned task 0, whose worker dies: 7 goes to the replacement, 0 is not replayed.
    assert list(scheduler.run([7])) == [70]
    assert scheduler.replays == 0 and len(warnings) == 1 and "started a replacement" in warnings[0]
    scheduler.close()


def test_sent_is_called_once_after_the_first_tasks_are_out():
    transport = ScriptedTransport()
    calls = []
    with Scheduler(transport, 2, depth=2) as scheduler:
        def sent():
            calls.append(sorted(task for tasks in transport.holding.values() for task in tasks))
        assert list(scheduler.run(range(6), sent=sent)) == [0, 10, 20, 30, 40, 50]
    assert calls == [[0, 1, 2, 3]]


def test_bad_depth():
    with pytest.raises(ValueError, match="depth must be at least 1"):
        Scheduler(ScriptedTransport(), 1, depth=0)



def _run_prefetching(scheduler, tasks, early):
    """Run tasks, handing ``early`` to prefetch once the first result is in; returns the results."""
    results = []
    for result in scheduler.run(tasks):
        if not results:
            for task in early:
                scheduler.prefetch(task)
        results.append(result)
    return results


def test_early_tasks_go_to_idle_workers_and_their_results_wait_for_their_run():
    # Task 2 finishes only after the early task 10: 10 and 11 go out while the first run still waits for 2.
    transport = ScriptedTransport(finish_order=[0, 1, 10, 2])
    with Scheduler(transport, 2) as scheduler:
        assert _run_prefetching(scheduler, [0, 1, 2], early=[10, 11]) == [0, 10, 20]
        assert transport.sent == [0, 1, 2, 10, 11]  # the run's own tasks first
        assert scheduler.early_sent == 2
        assert list(scheduler.run([10, 11, 12])) == [100, 110, 120]
    assert transport.sent == [0, 1, 2, 10, 11, 12]  # 10 and 11 were not sent again


def test_early_tasks_still_out_when_their_run_begins_are_not_sent_again():
    transport = ScriptedTransport(finish_order=[0, 1, 2, 10])
    with Scheduler(transport, 2) as scheduler:
        assert _run_prefetching(scheduler, [0, 1, 2], early=[10, 11]) == [0, 10, 20]
        assert transport.sent == [0, 1, 2, 10]  # 11 waits: no worker had room before the run ended
        assert list(scheduler.run([10, 11])) == [100, 110]
    assert transport.sent == [0, 1, 2, 10, 11]


def test_an_early_task_the_next_run_does_not_list_is_dropped():
    transport = ScriptedTransport(finish_order=[0, 1, 10, 2])
    with Scheduler(transport, 2) as scheduler:
        assert _run_prefetching(scheduler, [0, 1, 2], early=[10]) == [0, 10, 20]
        assert list(scheduler.run([7, 8])) == [70, 80]
        assert list(scheduler.run([10])) == [100]  # a later run that lists it plays it again
    assert transport.sent.count(10) == 2


def test_an_early_task_whose_worker_dies_is_replayed_and_counted():
    warnings = []
    transport = ScriptedTransport(finish_order=[0, 1, 10, 2], lose={10: 2})
    with Scheduler(transport, 2, on_warning=warnings.append) as scheduler:
        assert _run_prefetching(scheduler, [0, 1, 2], early=[10]) == [0, 10, 20]
        assert list(scheduler.run([10])) == [100]
        assert scheduler.replays == 2
    assert len(warnings) == 2 and all("while playing episode 10" in w for w in warnings)


def test_an_early_task_that_keeps_killing_workers_is_an_error_counting_its_early_tries():
    transport = ScriptedTransport(finish_order=[0, 1, 10, 2], lose={10: 3})
    with Scheduler(transport, 2, on_warning=lambda text: None) as scheduler:
        with pytest.raises(WorkerError, match="episode 10 killed its worker 3 times"):
            _run_prefetching(scheduler, [0, 1, 2], early=[10])
            list(scheduler.run([10]))
