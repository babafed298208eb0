-- CreateTable
CREATE TABLE "BatchJob" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "status" TEXT NOT NULL,
    "format" TEXT NOT NULL,
    "total" INTEGER NOT NULL,
    "processed" INTEGER NOT NULL DEFAULT 0,
    "failed" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL,
    "startedAt" DATETIME,
    "finishedAt" DATETIME,
    "error" TEXT,
    "notifyUrl" TEXT,
    "notifiedAt" DATETIME,
    "idempotencyKey" TEXT,
    "interpretation" JSONB
);

-- CreateTable
CREATE TABLE "BatchRow" (
    "jobId" TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    "input" TEXT NOT NULL,
    "predictionId" TEXT,
    "errorCode" TEXT,
    "errorMessage" TEXT,

    PRIMARY KEY ("jobId", "index"),
    CONSTRAINT "BatchRow_jobId_fkey" FOREIGN KEY ("jobId") REFERENCES "BatchJob" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "BatchJob_idempotencyKey_key" ON "BatchJob"("idempotencyKey");

-- CreateIndex
CREATE INDEX "BatchJob_status_id_idx" ON "BatchJob"("status", "id");
