"""Progress display: a live tqdm bar on a terminal, one plain line per batch otherwise."""
import math
import sys


class Progress:
    """Shows episodes, env steps/s, running reward and the last score.

    total_episodes/total_steps (either may be None) give the bar its length
    and ETA; the bar counts steps when only a step budget is known.
    """

    def __init__(self, start_episodes, start_steps, total_episodes=None, total_steps=None, stream=None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._by_steps = total_episodes is None and total_steps is not None
        self._bar = None
        self.min_interval = 0.0  # seconds between plain batch lines
        self._last_line = -math.inf
        if self.interactive:
            from tqdm import tqdm

            total, initial = (total_steps, start_steps) if self._by_steps else (total_episodes, start_episodes)
            self._bar = tqdm(total=total, initial=initial, unit=" steps" if self._by_steps else " ep",
                             file=self.stream, dynamic_ncols=True, smoothing=0.05)

    def episode(self, episode, env_steps, steps, reward, running_reward, steps_per_second):
        if self._bar is not None:
            self._bar.update(steps if self._by_steps else 1)
            self._bar.set_postfix_str(
                f"steps {env_steps:,} | {steps_per_second:,.0f} steps/s | "
                f"running {running_reward:+.2f} | last {reward:+.0f}", refresh=False)

    def batch(self, episode, env_steps, running_reward, steps_per_second, seconds):
        if self._bar is None and seconds - self._last_line >= self.min_interval:
            running = "n/a" if running_reward is None else format(running_reward, "+.3f")
            print(f"episode {episode}  env_steps {env_steps}  running_reward {running}  "
                  f"{steps_per_second:.0f} steps/s  {seconds:.0f} s", file=self.stream, flush=True)
            self._last_line = seconds

    def message(self, text):
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
