"""What `make demo` completes: `diffill complete examples/demo.py --line 7 --col 11`,
the cursor at the end of the bare `return` below (1-based line and column)."""


def is_even(number: int) -> bool:
    """True when `number` is divisible by two."""
    return


def main() -> None:
    for number in range(4):
        print(number, is_even(number))


if __name__ == "__main__":
    main()
