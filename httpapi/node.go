package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/biomatch/biomatch/engine"
	"github.com/biomatch/biomatch/metrics"
)

// The /node handlers. Each runs behind the gate, which has authenticated
// the caller and decoded the body: callFrom(c) is the request.

func handleCheckKey() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, checkKeyReply{Message: "API Key is valid", Status: 0})
	}
}

func handleBilling() gin.HandlerFunc {
	return func(c *gin.Context) { c.JSON(http.StatusOK, statusReply{0, "Success"}) }
}

func handleEnroll(svc *engine.Service, m *metrics.Metrics) gin.HandlerFunc {
	count := func(outcome string) {
		if m != nil {
			m.EnrollOutcomes.WithLabelValues(outcome).Inc()
		}
	}
	return func(c *gin.Context) {
		call := callFrom(c)
		vectors, err := call.readVectors()
		if err != nil {
			count("invalid")
			nodeError(c, err)
			return
		}
		req, err := svc.SubmitEnroll(c.Request.Context(), engine.EnrollInput{
			Gallery: call.gallery, KeyID: call.key.ID, RequestID: c.GetString(ctxRequestID),
			ExternalID: call.req.UserIdentifier, Vectors: vectors, Arrived: c.GetTime(ctxArrived),
		})
		if err != nil {
			if errors.Is(err, engine.ErrInvalid) {
				count("invalid")
			} else if errors.Is(err, engine.ErrRejected) {
				count("rejected")
			}
			nodeError(c, err)
			return
		}
		c.Header(headerEnrollRequest, req.ID)
		switch {
		case req.State == engine.Pending:
			count("queued")
			c.JSON(http.StatusAccepted, statusReply{0, "queued"})
		case req.Result.Outcome == engine.Rejected:
			count("rejected")
			c.JSON(http.StatusConflict, statusReply{152, "face enrollment failed: " + req.Result.Reason})
		case req.Result.Outcome == engine.Existing:
			count("existing")
			c.JSON(http.StatusOK, call.person(0, "User Already Enrolled", req.Result.Person, req.Result.Score))
		default:
			count("created")
			c.JSON(http.StatusOK, call.person(0, "Ok", req.Result.Person, req.Result.Score))
		}
	}
}

func handlePredict(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		call := callFrom(c)
		vectors, err := call.readVectors()
		if err != nil {
			nodeError(c, err)
			return
		}
		probe, err := engine.Probe(vectors)
		if err != nil {
			nodeError(c, err)
			return
		}
		ctx := c.Request.Context()
		level, err := matchLevel(svc, call.key, c.GetHeader(headerSecurityLevel))
		if err != nil {
			nodeError(c, fmt.Errorf("%s: %w", headerSecurityLevel, err))
			return
		}
		if id := call.req.UserIdentifier; id != "" {
			cand, matched, d, err := svc.Verify(ctx, call.gallery, id, probe, level)
			if err == nil {
				reportDecision(c, d)
			}
			switch {
			case errors.Is(err, engine.ErrNotFound):
				c.JSON(http.StatusOK, notEnrolled)
			case err != nil:
				nodeError(c, err)
			case !matched:
				_ = svc.Audit(ctx, audit(c, call, "verify", cand.Person.PUID, "no match"))
				c.JSON(http.StatusOK, notEnrolledReply{Status: 153, Message: "Face authentication failed", PUID: "-1", GUID: "-1", Score: -1})
			default:
				_ = svc.Audit(ctx, audit(c, call, "verify", cand.Person.PUID, "match"))
				c.JSON(http.StatusOK, call.person(0, "Ok", cand.Person, cand.Score))
			}
			return
		}
		k := int(call.req.K)
		cands, d, err := svc.Identify(ctx, call.gallery, probe, k, level)
		if err != nil {
			nodeError(c, err)
			return
		}
		reportDecision(c, d)
		if len(cands) == 0 {
			c.JSON(http.StatusOK, notEnrolled)
			return
		}
		if err := svc.Audit(ctx, audit(c, call, "identify", cands[0].Person.PUID, "")); err != nil {
			nodeError(c, err)
			return
		}
		reply := predictReply{personReply: call.person(0, "Ok", cands[0].Person, cands[0].Score)}
		if k > 1 {
			for _, cand := range cands {
				reply.PIList = append(reply.PIList, piEntry{EnrollLevel: cand.Person.EnrollLevel,
					PUID: call.encryptID(cand.Person.PUID), GUID: call.encryptID(cand.Person.GUID), Score: cand.Score})
			}
		}
		c.JSON(http.StatusOK, reply)
	}
}

func handleDeleteUser(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		call := callFrom(c)
		if call.req.PUID == "" {
			c.JSON(http.StatusBadRequest, statusReply{-2, "Missing PUID."})
			return
		}
		puid, ok := call.decryptID(call.req.PUID)
		if !ok {
			c.JSON(http.StatusBadRequest, statusReply{400, "delete failed"})
			return
		}
		_, err := svc.Delete(c.Request.Context(), call.key.CustomerID, puid, audit(c, call, "delete", puid, ""))
		switch {
		case errors.Is(err, engine.ErrNotFound):
			c.JSON(http.StatusBadRequest, statusReply{400, "delete failed"})
		case err != nil:
			nodeError(c, err)
		default:
			c.JSON(http.StatusOK, statusReply{0, "ok"})
		}
	}
}

func handleSyncUUID(svc *engine.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		call := callFrom(c)
		if len(call.req.PUIDList) > 1000 {
			c.JSON(http.StatusBadRequest, statusReply{-2, "puid_list holds more than 1000 entries"})
			return
		}
		plain := make([]string, len(call.req.PUIDList))
		for i, s := range call.req.PUIDList {
			plain[i], _ = call.decryptID(s)
		}
		levels, err := svc.EnrollLevels(c.Request.Context(), call.key.CustomerID, plain)
		if err != nil {
			nodeError(c, err)
			return
		}
		state := make(map[string]int, len(plain))
		for i, sent := range call.req.PUIDList {
			state[sent] = levels[plain[i]]
		}
		c.JSON(http.StatusOK, syncReply{Status: 0, PUIDState: state})
	}
}

func plainDisabled(c *gin.Context) {
	c.JSON(http.StatusNotFound, statusReply{-1, "the plain routes are disabled on this server (the operator enables them with PLAIN_ROUTES=true)"})
}

// audit is the audit record of a call.
func audit(c *gin.Context, call *nodeCall, action, puid, detail string) engine.AuditEntry {
	return engine.AuditEntry{KeyID: call.key.ID, Tenant: call.key.CustomerID, Action: action, PUID: puid,
		RequestID: c.GetString(ctxRequestID), Detail: detail}
}
