from balrog_worker.cli import main

raise SystemExit(main())
