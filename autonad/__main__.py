from autonad.cli import main

raise SystemExit(main())
